#include "privydrop/pd_common.h"

#include <time.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

int pd_slice_ieq(pd_slice s, const char *lit)
{
    size_t n = strlen(lit);
    if (s.len != n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char a = (unsigned char)s.base[i], b = (unsigned char)lit[i];
        if (a >= 'A' && a <= 'Z')
            a = (unsigned char)(a - 'A' + 'a');
        if (b >= 'A' && b <= 'Z')
            b = (unsigned char)(b - 'A' + 'a');
        if (a != b)
            return 0;
    }
    return 1;
}

uint64_t pd_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t pd_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int pd_id_valid(pd_slice id)
{
    if (id.len == 0 || id.len > PD_ID_MAX)
        return 0;
    for (size_t i = 0; i < id.len; i++) {
        unsigned char c = (unsigned char)id.base[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                 (c >= '0' && c <= '9') || c == '_' || c == '-';
        if (!ok)
            return 0;
    }
    return 1;
}

int pd_utf8_valid(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
#if defined(__SSE2__)
        /* ASCII runs sixteen bytes at a time. */
        while (len - i >= 16 && !_mm_movemask_epi8(_mm_loadu_si128((const __m128i *)(const void *)(s + i))))
            i += 16;
        if (i >= len)
            break;
#endif
        /* ASCII runs eight bytes at a time. */
        if (len - i >= 8) {
            uint64_t v;
            memcpy(&v, s + i, 8);
            if (!(v & 0x8080808080808080ULL)) {
                i += 8;
                continue;
            }
        }
        uint8_t b = s[i];
        if (b < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint8_t lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
        if (b >= 0xc2 && b <= 0xdf) {
            n = 2;
        } else if (b >= 0xe0 && b <= 0xef) {
            n = 3;
            if (b == 0xe0)
                lo = 0xa0; /* overlong */
            else if (b == 0xed)
                hi = 0x9f; /* surrogates */
        } else if (b >= 0xf0 && b <= 0xf4) {
            n = 4;
            if (b == 0xf0)
                lo = 0x90; /* overlong */
            else if (b == 0xf4)
                hi = 0x8f; /* above U+10FFFF */
        } else {
            return 0;
        }
        if (len - i < n || s[i + 1] < lo || s[i + 1] > hi)
            return 0;
        for (size_t k = 2; k < n; k++)
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
        i += n;
    }
    return 1;
}
