/*
 * lockhelper - tiny POSIX byte-range lock probe for the kclient harness.
 *
 * Busybox has no flock(1) and, even if it had, flock(2) locks are whole-file
 * and map differently onto NFS.  The harness needs fcntl() byte-range locks
 * (which the Linux NFSv4 client turns into LOCK/LOCKT/LOCKU) taken by
 * separate processes, so this program opens FILE once and runs a list of
 * operations against that one descriptor, in order.
 *
 * Built statically by prepare.sh (the initramfs has no libc).
 *
 * usage: lockhelper FILE OP...
 *        lockhelper -x FILE          exclusive create (O_CREAT|O_EXCL)
 *
 * OPs:
 *   r:START:LEN       F_SETLK  read (shared) lock, non-blocking
 *   w:START:LEN       F_SETLK  write (exclusive) lock, non-blocking
 *   R:START:LEN       F_SETLKW read lock, blocking
 *   W:START:LEN       F_SETLKW write lock, blocking
 *   u:START:LEN       unlock the range
 *   t:START:LEN:r|w   F_GETLK: prints "TEST FREE" or
 *                     "TEST HELD <r|w> <start> <len>"; never fails
 *   m:PATH            create marker file PATH ("I got this far"), so a shell
 *                     can wait for a background holder without races
 *   h:SECS            hold: sleep SECS seconds, or until SIGTERM/SIGINT/SIGUSR1
 *   s:SECS            plain sleep (not interruptible by those signals' intent)
 *   c:PATH            copy: write PATH's contents to FILE at the descriptor's
 *                     offset and print "COPIED <bytes>".  Data written by a
 *                     process that then keeps FILE open stays in the client's
 *                     page cache: every close(2) of a descriptor of an NFS
 *                     file (a shell redirection undone, a forked child
 *                     exiting) makes the Linux client flush it.
 *   l:N:LOG           loop: N times write line i (a fixed 64-byte line that
 *                     names i) at offset 64*i, fsync, read it back and
 *                     compare, every 20 ms; after each success append
 *                     "i <CLOCK_BOOTTIME ms>" to LOG (a guest tmpfs file), so
 *                     a shell can see when I/O went through. Prints
 *                     "LOOP ok N max_gap_ms G at I" (the longest time between
 *                     two successes, ending at line I) or "LOOP error ...".
 *                     On a hard mount a server outage only stalls it.
 *   LEN 0 means "to end of file and beyond", as in fcntl().
 *
 * Each lock op prints one line: "GRANTED w 0 100" or "DENIED w 0 100 <errno>".
 *
 * Exit status:
 *   0  every op succeeded
 *   1  a lock request was denied (EAGAIN/EACCES); ops after it are not run
 *   2  usage error, open failure or unexpected errno
 *   3  a blocking request was interrupted by a signal
 * For -x: 0 created, 1 already existed (EEXIST), 2 other error.
 * Locks are released implicitly when the process exits (descriptor closed).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
    (void)sig;
    got_signal = 1;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: lockhelper FILE OP...   (OP: r|w|R|W|u:START:LEN, "
            "t:START:LEN:r|w, m:PATH, h:SECS, s:SECS, c:PATH)\n"
            "       lockhelper -x FILE\n");
    exit(2);
}

/* Parse "START:LEN" (and optional ":r|w") after the op letter and colon. */
static void parse_range(const char *arg, off_t *start, off_t *len, char *kind)
{
    char *end;
    long long s = strtoll(arg, &end, 0);
    if (*end != ':')
        usage();
    long long l = strtoll(end + 1, &end, 0);
    if (kind) {
        if (end[0] != ':' || (end[1] != 'r' && end[1] != 'w') || end[2])
            usage();
        *kind = end[1];
    } else if (*end) {
        usage();
    }
    *start = (off_t)s;
    *len = (off_t)l;
}

/* Sleep up to secs seconds; with interruptible, return early on a signal. */
static void hold(double secs, int interruptible)
{
    struct timespec now, deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += (time_t)secs;
    deadline.tv_nsec += (long)((secs - (double)(time_t)secs) * 1e9);
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    for (;;) {
        if (interruptible && got_signal)
            return;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec > deadline.tv_sec ||
            (now.tv_sec == deadline.tv_sec && now.tv_nsec >= deadline.tv_nsec))
            return;
        /* short naps so a signal is noticed promptly even if it raced us */
        struct timespec nap = {0, 50 * 1000 * 1000};
        nanosleep(&nap, NULL);
    }
}

/* Append the contents of path to fd; 0 on success. */
static int copy_in(int fd, const char *path)
{
    int src = open(path, O_RDONLY);
    if (src < 0) {
        printf("ERROR copy %s: %s\n", path, strerror(errno));
        return 2;
    }
    char buf[8192];
    long long total = 0;
    for (;;) {
        ssize_t n = read(src, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            printf("ERROR copy read %s: %s\n", path, strerror(errno));
            close(src);
            return 2;
        }
        if (n == 0)
            break;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(fd, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                printf("ERROR copy write: %s\n", w < 0 ? strerror(errno) : "short write");
                close(src);
                return 2;
            }
            off += w;
            total += w;
        }
    }
    close(src);
    printf("COPIED %lld\n", total);
    return 0;
}

static long long boot_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_BOOTTIME, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* The l: op (see the usage comment). */
static int io_loop(int fd, const char *arg)
{
    char *end;
    long n = strtol(arg, &end, 10);
    if (*end != ':' || n <= 0 || n > 1000000)
        usage();
    const char *logpath = end + 1;
    FILE *log = fopen(logpath, "a");
    if (!log) {
        printf("LOOP error log %s: %s\n", logpath, strerror(errno));
        return 2;
    }
    setvbuf(log, NULL, _IOLBF, 0);
    long long last = boot_ms(), max_gap = 0;
    long gap_at = 0;
    for (long i = 0; i < n; i++) {
        char line[65], back[64];
        snprintf(line, sizeof line, "line %07ld written across a head failover 0123456789abcdefghi\n", i);
        off_t at = (off_t)i * 64;
        if (pwrite(fd, line, 64, at) != 64) {
            printf("LOOP error write %ld: %s\n", i, strerror(errno));
            return 2;
        }
        if (fsync(fd) != 0) {
            printf("LOOP error fsync %ld: %s\n", i, strerror(errno));
            return 2;
        }
        if (pread(fd, back, 64, at) != 64 || memcmp(back, line, 64) != 0) {
            printf("LOOP error read back %ld: %s\n", i, strerror(errno));
            return 2;
        }
        long long now = boot_ms();
        if (now - last > max_gap) {
            max_gap = now - last;
            gap_at = i;
        }
        last = now;
        fprintf(log, "%ld %lld\n", i, now);
        struct timespec nap = {0, 20 * 1000 * 1000};
        nanosleep(&nap, NULL);
        last += 20;
    }
    fclose(log);
    printf("LOOP ok %ld max_gap_ms %lld at %ld\n", n, max_gap, gap_at);
    return 0;
}

static int excl_create(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd >= 0) {
        printf("CREATED %s\n", path);
        close(fd);
        return 0;
    }
    if (errno == EEXIST) {
        printf("EXISTS %s\n", path);
        return 1;
    }
    printf("ERROR %s %s\n", path, strerror(errno));
    return 2;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 3 && strcmp(argv[1], "-x") == 0)
        return excl_create(argv[2]);
    if (argc < 3)
        usage();

    /* No SA_RESTART: a signal must be able to cut F_SETLKW and holds short. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);

    /* O_RDWR so both read and write locks are permitted on the descriptor. */
    int fd = open(argv[1], O_RDWR | O_CREAT, 0644);
    if (fd < 0) {
        printf("ERROR open %s: %s\n", argv[1], strerror(errno));
        return 2;
    }

    for (int i = 2; i < argc; i++) {
        const char *op = argv[i];
        if (!op[0] || op[1] != ':')
            usage();
        const char *arg = op + 2;
        struct flock fl;
        memset(&fl, 0, sizeof fl);
        fl.l_whence = SEEK_SET;
        int cmd;
        char kind = 0;

        switch (op[0]) {
        case 'r': case 'w': case 'R': case 'W': case 'u':
            parse_range(arg, &fl.l_start, &fl.l_len, NULL);
            fl.l_type = op[0] == 'u' ? F_UNLCK
                      : (op[0] == 'r' || op[0] == 'R') ? F_RDLCK : F_WRLCK;
            cmd = (op[0] == 'R' || op[0] == 'W') ? F_SETLKW : F_SETLK;
            if (fcntl(fd, cmd, &fl) == 0) {
                printf("GRANTED %c %lld %lld\n", op[0],
                       (long long)fl.l_start, (long long)fl.l_len);
                break;
            }
            {
                int e = errno;
                printf("DENIED %c %s %s\n", op[0], arg, strerror(e));
                if (e == EAGAIN || e == EACCES)
                    return 1;
                if (e == EINTR)
                    return 3;
                return 2;
            }
        case 't':
            parse_range(arg, &fl.l_start, &fl.l_len, &kind);
            fl.l_type = kind == 'r' ? F_RDLCK : F_WRLCK;
            if (fcntl(fd, F_GETLK, &fl) != 0) {
                printf("ERROR getlk %s: %s\n", arg, strerror(errno));
                return 2;
            }
            if (fl.l_type == F_UNLCK)
                printf("TEST FREE\n");
            else
                printf("TEST HELD %c %lld %lld\n",
                       fl.l_type == F_RDLCK ? 'r' : 'w',
                       (long long)fl.l_start, (long long)fl.l_len);
            break;
        case 'm': {
            int m = open(arg, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (m < 0) {
                printf("ERROR marker %s: %s\n", arg, strerror(errno));
                return 2;
            }
            close(m);
            break;
        }
        case 'h':
            hold(atof(arg), 1);
            break;
        case 's':
            hold(atof(arg), 0);
            break;
        case 'c':
            if (copy_in(fd, arg) != 0)
                return 2;
            break;
        case 'l':
            if (io_loop(fd, arg) != 0)
                return 2;
            break;
        default:
            usage();
        }
    }
    close(fd);
    return 0;
}
