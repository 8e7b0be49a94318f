/* test_id.c — socket ids, alphabet ids and raw random bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "privydrop/pd_common.h"
#include "privydrop/pd_id.h"

static int is_b64url(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_';
}

static void socket_id_shape(void **state)
{
    (void)state;
    for (int k = 0; k < 1000; k++) {
        char id[PD_SOCKET_ID_LEN + 1];
        memset(id, 'X', sizeof id);
        assert_int_equal(pd_id_socket(id), PD_OK);
        assert_int_equal(strlen(id), PD_SOCKET_ID_LEN);
        for (int i = 0; i < PD_SOCKET_ID_LEN; i++)
            assert_true(is_b64url(id[i]));
        /* Socket ids double as Redis key parts and must pass the id check. */
        assert_true(pd_id_valid(pd_slice_cstr(id)));
    }
}

static int cmp_ids(const void *a, const void *b)
{
    return memcmp(a, b, PD_SOCKET_ID_LEN + 1);
}

static void socket_ids_are_unique_and_use_all_symbols(void **state)
{
    (void)state;
    enum { N = 20000 };
    char (*ids)[PD_SOCKET_ID_LEN + 1] = calloc(N, sizeof *ids);
    assert_non_null(ids);
    int seen[256] = {0};
    for (int k = 0; k < N; k++) {
        assert_int_equal(pd_id_socket(ids[k]), PD_OK);
        for (int i = 0; i < PD_SOCKET_ID_LEN; i++)
            seen[(unsigned char)ids[k][i]]++;
    }
    qsort(ids, N, sizeof *ids, cmp_ids);
    for (int k = 1; k < N; k++)
        assert_int_not_equal(memcmp(ids[k - 1], ids[k], sizeof ids[k]), 0);
    /* 400000 symbols over 64 values: each appears ~6250 times. */
    int distinct = 0;
    for (int c = 0; c < 256; c++) {
        if (seen[c]) {
            distinct++;
            assert_true(is_b64url((char)c));
            assert_in_range(seen[c], 5000, 7500);
        }
    }
    assert_int_equal(distinct, 64);
    free(ids);
}

static void random_id_digits_uniform(void **state)
{
    (void)state;
    enum { N = 1000000 };
    char *s = malloc(N + 1);
    assert_non_null(s);
    assert_int_equal(pd_id_random(s, N, PD_ALPHABET_DIGITS), PD_OK);
    assert_int_equal(strlen(s), N);
    int count[10] = {0};
    for (int i = 0; i < N; i++) {
        assert_true(s[i] >= '0' && s[i] <= '9');
        count[s[i] - '0']++;
    }
    /* Expected 100000 each (sd ~300); a modulo-biased generator (256 % 10 =
     * 6) would give the digits 0..5 about 101560 and 6..9 about 97660, so
     * the two groups' means must not differ by more than ~5 sd. */
    int low = 0, high = 0;
    for (int d = 0; d < 10; d++) {
        assert_in_range(count[d], 98000, 102000);
        if (d < 6)
            low += count[d];
        else
            high += count[d];
    }
    double diff = (double)low / 6 - (double)high / 4;
    assert_true(diff > -1000 && diff < 1000);
    free(s);
}

static void random_id_alnum_and_edge_alphabets(void **state)
{
    (void)state;
    char s[65];
    assert_int_equal(pd_id_random(s, 4, PD_ALPHABET_ALNUM), PD_OK);
    assert_int_equal(strlen(s), 4);
    for (int i = 0; i < 4; i++)
        assert_non_null(strchr(PD_ALPHABET_ALNUM, s[i]));

    assert_int_equal(pd_id_random(s, 64, "z"), PD_OK);
    for (int i = 0; i < 64; i++)
        assert_int_equal(s[i], 'z');
    assert_int_equal(s[64], '\0');

    memset(s, 'Q', sizeof s);
    assert_int_equal(pd_id_random(s, 0, PD_ALPHABET_DIGITS), PD_OK);
    assert_int_equal(s[0], '\0');

    assert_int_equal(pd_id_random(s, 4, ""), PD_ERR);
    assert_int_equal(pd_id_random(s, 4, NULL), PD_ERR);
    assert_int_equal(pd_id_random(NULL, 4, "ab"), PD_ERR);

    /* 256 distinct bytes is the largest usable alphabet. */
    char big[258];
    for (int i = 0; i < 255; i++)
        big[i] = (char)(i + 1);
    big[255] = '\0';
    assert_int_equal(pd_id_random(s, 32, big), PD_OK);
    memset(big, 'a', 257);
    big[257] = '\0';
    assert_int_equal(pd_id_random(s, 4, big), PD_ERR);
}

static void random_bytes_sizes(void **state)
{
    (void)state;
    assert_int_equal(pd_random_bytes(NULL, 0), PD_OK);
    assert_int_equal(pd_random_bytes(NULL, 1), PD_ERR);
    /* Sizes around the internal block and far beyond it. */
    size_t sizes[] = {1, 15, 127, 128, 129, 255, 256, 257, 4096, 1 << 20};
    for (size_t k = 0; k < PD_ARRAY_LEN(sizes); k++) {
        size_t n = sizes[k];
        unsigned char *a = calloc(1, n), *b = calloc(1, n);
        assert_non_null(a);
        assert_non_null(b);
        assert_int_equal(pd_random_bytes(a, n), PD_OK);
        assert_int_equal(pd_random_bytes(b, n), PD_OK);
        if (n >= 15)
            assert_int_not_equal(memcmp(a, b, n), 0);
        if (n >= 4096) {
            size_t zeros = 0;
            for (size_t i = 0; i < n; i++)
                zeros += a[i] == 0;
            assert_true(zeros < n / 128); /* ~n/256 expected */
        }
        free(a);
        free(b);
    }
}

/* After fork() the child must not hand out the bytes buffered in the parent. */
static void forked_child_gets_different_ids(void **state)
{
    (void)state;
    char warm[PD_SOCKET_ID_LEN + 1];
    assert_int_equal(pd_id_socket(warm), PD_OK); /* buffer now holds unused bytes */
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char id[PD_SOCKET_ID_LEN + 1];
        int rc = pd_id_socket(id);
        ssize_t w = write(fds[1], id, sizeof id);
        _exit(rc == PD_OK && w == (ssize_t)sizeof id ? 0 : 1);
    }
    close(fds[1]);
    char child[PD_SOCKET_ID_LEN + 1];
    assert_int_equal(read(fds[0], child, sizeof child), (ssize_t)sizeof child);
    close(fds[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    char parent[PD_SOCKET_ID_LEN + 1];
    assert_int_equal(pd_id_socket(parent), PD_OK);
    assert_string_not_equal(parent, child);
}

/* A tagged socket id carries its worker's tag in front; pd_id_tag_of finds
 * it, and tells a plain id apart (docs/architecture.md §Signals). */
static void tagged_socket_ids(void **state)
{
    (void)state;
    char id[PD_SOCKET_ID_MAX + 1];
    assert_int_equal(pd_id_socket_tagged(id, "Ab3dEf9h"), PD_OK);
    assert_int_equal(strlen(id), PD_SOCKET_ID_MAX);
    assert_memory_equal(id, "Ab3dEf9h", PD_ID_TAG_LEN);
    for (int i = PD_ID_TAG_LEN; i < PD_SOCKET_ID_MAX; i++)
        assert_true(is_b64url(id[i]));
    assert_true(pd_id_valid(pd_slice_cstr(id)));
    pd_slice tag = {NULL, 0};
    assert_int_equal(pd_id_tag_of(pd_slice_cstr(id), &tag), 1);
    assert_int_equal(tag.len, PD_ID_TAG_LEN);
    assert_ptr_equal(tag.base, id);
    /* No usable tag: a plain id, which has no tag to find. */
    const char *no_tag[] = {NULL, "", "short", "Ab3dEf9hX", "Ab3d-f9h"};
    for (size_t k = 0; k < sizeof no_tag / sizeof *no_tag; k++) {
        assert_int_equal(pd_id_socket_tagged(id, no_tag[k]), PD_OK);
        assert_int_equal(strlen(id), PD_SOCKET_ID_LEN);
        assert_int_equal(pd_id_tag_of(pd_slice_cstr(id), &tag), 0);
    }
    /* The right length with a head that is not a tag. */
    assert_int_equal(pd_id_tag_of(pd_slice_cstr("Ab3d_f9hAAAAAAAAAAAAAAAAAAAA"), &tag), 0);
    assert_int_equal(pd_id_tag_of(pd_slice_cstr("Ab3dxf9hAAAAAAAAAAAAAAAAAAAA"), &tag), 1);
    assert_int_equal(pd_id_tag_of(pd_slice_cstr("Ab3dxf9hAAAAAAAAAAAAAAAAAAA"), &tag), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(socket_id_shape),
        cmocka_unit_test(tagged_socket_ids),
        cmocka_unit_test(socket_ids_are_unique_and_use_all_symbols),
        cmocka_unit_test(random_id_digits_uniform),
        cmocka_unit_test(random_id_alnum_and_edge_alphabets),
        cmocka_unit_test(random_bytes_sizes),
        cmocka_unit_test(forked_child_gets_different_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
