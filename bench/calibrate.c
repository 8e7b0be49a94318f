/* privydrop-calibrate — what a loopback write+read costs on this machine,
 * so benchmark figures from different machines can be compared as ratios
 * (docs/benchmarks.md, "Machine header").
 *
 * Over an AF_UNIX socketpair and over a loopback TCP connection
 * (TCP_NODELAY), N times (default 100 000):
 *   *_local_pair_ns  one thread writes one byte into one end and reads it
 *                    from the other: the cost of a write+read pair without
 *                    any scheduling in between; *_local_pair_cpu_ns the CPU
 *                    time of it (lower when the thread was preempted) — the
 *                    steadiest figure, the one to compare machines by;
 *   *_rtt_ns         two processes bounce one byte back and forth: a round
 *                    trip, wall-clock, two wake-ups included (on a busy
 *                    machine it grows: that is why it is printed too);
 *   *_rtt_cpu_ns     the CPU time (user + system, both processes) one round
 *                    trip took.
 * Prints one JSON object with those figures. Usage: privydrop-calibrate [N]
 * (N in 100..10 000 000). Exit 1 on any socket error. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static double cpu_ns(int who)
{
    struct rusage ru;
    getrusage(who, &ru);
    return ((double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec) * 1e9 +
           ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) * 1e3;
}

/* One thread: write a byte into a, read it from b, n times. ns per pair or
 * -1; *cpu: CPU ns per pair (the same unless the thread was preempted).
 * Loopback delivers within the write, so the read never waits. */
static double time_local(int a, int b, long n, double *cpu)
{
    char c = 'x';
    double t0 = now_ns(), c0 = cpu_ns(RUSAGE_SELF);
    for (long i = 0; i < n; i++)
        if (write(a, &c, 1) != 1 || read(b, &c, 1) != 1)
            return -1;
    *cpu = (cpu_ns(RUSAGE_SELF) - c0) / (double)n;
    return (now_ns() - t0) / (double)n;
}

/* One byte each way, n times; 0 or -1. `first`: this side writes first. */
static int bounce(int fd, long n, int first)
{
    char b = 'x';
    for (long i = 0; i < n; i++) {
        if (first && write(fd, &b, 1) != 1)
            return -1;
        ssize_t r;
        do
            r = read(fd, &b, 1);
        while (r < 0 && errno == EINTR);
        if (r != 1)
            return -1;
        if (!first && write(fd, &b, 1) != 1)
            return -1;
    }
    return 0;
}

/* Fork an echoing child on `theirs`, time n round trips on `mine`. Returns
 * ns per round trip (and in *cpu the CPU ns of both sides per round trip),
 * or -1. Both descriptors are closed. */
static double time_pair(int mine, int theirs, long n, double *cpu)
{
    double self0 = cpu_ns(RUSAGE_SELF), kids0 = cpu_ns(RUSAGE_CHILDREN);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        close(mine);
        _exit(bounce(theirs, n, 0) == 0 ? 0 : 1);
    }
    close(theirs);
    /* A few untimed trips first: the child is scheduled, caches are warm. */
    long warm = n / 100 + 1;
    double t0 = 0;
    int rc = bounce(mine, warm, 1);
    if (rc == 0) {
        t0 = now_ns();
        rc = bounce(mine, n - warm, 1);
    }
    double dt = now_ns() - t0;
    close(mine);
    int status = 0;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0 || rc != 0)
        return -1;
    /* The child's CPU time covers its warm-up trips too: per trip of all. */
    *cpu = (cpu_ns(RUSAGE_SELF) - self0 + cpu_ns(RUSAGE_CHILDREN) - kids0) / (double)n;
    return dt / (double)(n - warm);
}

static int tcp_pair(int fds[2])
{
    int one = 1, l = socket(AF_INET, SOCK_STREAM, 0);
    if (l < 0)
        return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    if (bind(l, (struct sockaddr *)&a, sizeof a) != 0 || listen(l, 1) != 0 ||
        getsockname(l, (struct sockaddr *)&a, &alen) != 0) {
        close(l);
        return -1;
    }
    fds[0] = socket(AF_INET, SOCK_STREAM, 0);
    if (fds[0] < 0 || connect(fds[0], (struct sockaddr *)&a, sizeof a) != 0) {
        if (fds[0] >= 0)
            close(fds[0]);
        close(l);
        return -1;
    }
    fds[1] = accept(l, NULL, NULL);
    close(l);
    if (fds[1] < 0) {
        close(fds[0]);
        return -1;
    }
    setsockopt(fds[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fds[1], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return 0;
}

int main(int argc, char **argv)
{
    long n = 100000;
    if (argc > 2 || (argc == 2 && ((n = strtol(argv[1], NULL, 10)) < 100 || n > 10000000))) {
        fprintf(stderr, "usage: privydrop-calibrate [round trips, 100..10000000]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int fds[2];
    double unix_cpu = 0, tcp_cpu = 0, unix_lcpu = 0, tcp_lcpu = 0;
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) {
        perror("calibrate: socketpair");
        return 1;
    }
    double unix_local = time_local(fds[0], fds[1], n, &unix_lcpu);
    double unix_rtt = time_pair(fds[0], fds[1], n, &unix_cpu);
    if (tcp_pair(fds) != 0) {
        perror("calibrate: loopback TCP");
        return 1;
    }
    double tcp_local = time_local(fds[0], fds[1], n, &tcp_lcpu);
    double tcp_rtt = time_pair(fds[0], fds[1], n, &tcp_cpu);
    if (unix_local < 0 || tcp_local < 0 || unix_rtt < 0 || tcp_rtt < 0) {
        fprintf(stderr, "calibrate: a write or read failed\n");
        return 1;
    }
    printf("{\"round_trips\":%ld,\"unix_local_pair_ns\":%.0f,\"unix_local_pair_cpu_ns\":%.0f,"
           "\"tcp_local_pair_ns\":%.0f,\"tcp_local_pair_cpu_ns\":%.0f,\"unix_rtt_ns\":%.0f,"
           "\"unix_rtt_cpu_ns\":%.0f,\"tcp_rtt_ns\":%.0f,\"tcp_rtt_cpu_ns\":%.0f}\n",
           n, unix_local, unix_lcpu, tcp_local, tcp_lcpu, unix_rtt, unix_cpu, tcp_rtt, tcp_cpu);
    return 0;
}
