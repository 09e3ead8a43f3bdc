/* A parent that never reaps, for the reap-in-place safety tests.
 *
 *   reap_parent MODE ZOMBIES
 *
 * Makes ZOMBIES children that exit at once, prints "ready <address>" (the address of a read-only page that
 * holds a `syscall` instruction: executing it faults), then its leader thread works in MODE while a control
 * thread answers one line per command on stdin:
 *   zombies N   make N more zombies (from the control thread)  -> "zombies N"
 *   poke        wake the epoll modes                            -> "poked"
 *   report      the mode's counters                             -> one line
 *   quit        reap every child (waitid, __WALL) and exit 0
 * Whatever damage the injection did shows in the report or the exit status: 4 = EINTR seen by a call that
 * never expects it, 5 = a computation came out wrong.
 *
 * Modes: busy (a checked computation), epoll (epoll_wait, no timeout), epoll-busy (work, then short
 * epoll_waits), recv and recv-timeout (recv on a socket, without and with SO_RCVTIMEO; udp-timeout: a UDP
 * socket on 127.0.0.1 with SO_RCVTIMEO, whose net_cls classid `ss` shows), sigwait (sigwaitinfo,
 * no handler), sigqueue (busy, SA_SIGINFO handler for SIGRTMIN+1 recording every payload), segv (takes SIGSEGV faults on purpose, handler fixes them up), rseq (glibc's rseq
 * area, a long critical section, a watcher thread that notes the section the leader was stopped in),
 * nonutf8 (a comm that is not UTF-8 and a seccomp filter that kills on wait4), filter-nr and filter-arg
 * (seccomp filters that allow the reap, one never reading wait4's pid, one reading it), sigtrap-ignored
 * (SIGTRAP ignored), clone (the zombies are clone() children without SIGCHLD), filter-mmap (a seccomp filter
 * failing mmap with PROT_READ alone, EPERM: the loop's page), filter-ip (a seccomp filter failing wait4 whose
 * instruction pointer ends in 0x020 within its page, where the loop's syscall returns to), mdwe (busy under
 * PR_SET_MDWE: no memory may become executable), remap (busy; a second thread maps a page of its own with
 * MAP_FIXED at the address written to the file $ZC_REMAP_REQUEST, "theirs" in it, and writes the address to
 * $ZC_REMAP_DONE: another thread of the parent taking over the loop's page), masked-handler (sigqueue, its
 * handler run with every signal blocked, and a SIGTRAP handler of its own), sigsuspend (every signal blocked, a
 * SIGTRAP handler, waiting in sigsuspend with an empty temporary mask).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/rseq.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *mode;
static int pipe_fds[2];
static volatile int stop_work;
static volatile uint64_t rounds, corrupt, events, eintr;

/* --- zombies ------------------------------------------------------------------------------------------ */

static int exit_at_once(void *arg) { (void)arg; _exit(0); }

static void make_zombies(int count)
{
    for (int i = 0; i < count; i++) {
        if (!strcmp(mode, "clone")) {
            char *stack = malloc(65536);
            if (clone(exit_at_once, stack + 65536, 0 /* no SIGCHLD: plain wait4 gets ECHILD */, NULL) < 0)
                _exit(3);
        } else if (fork() == 0) {
            _exit(0);
        }
    }
}

/* --- a computation that shows corrupted registers -------------------------------------------------------- */

static uint64_t lcg(uint64_t x, long steps)
{
    for (long i = 0; i < steps; i++)
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    return x;
}

/* Each round computes the same thing twice: registers changed under it make the two differ. */
static void busy(void)
{
    while (!stop_work) {
        uint64_t expected = lcg(rounds, 20000);
        if (lcg(rounds, 20000) != expected)
            corrupt++;
        rounds++;
    }
}

/* --- epoll ------------------------------------------------------------------------------------------------ */

static void epoll_loop(int timeout_ms, int work)
{
    int epoll = epoll_create1(0);
    struct epoll_event event = {.events = EPOLLIN};
    epoll_ctl(epoll, EPOLL_CTL_ADD, pipe_fds[0], &event);
    while (!stop_work) {
        if (work) {
            uint64_t expected = lcg(rounds, 3000);
            if (lcg(rounds, 3000) != expected)
                corrupt++;
            rounds++;
        }
        int n = epoll_wait(epoll, &event, 1, timeout_ms);
        if (n < 0 && errno == EINTR) {
            printf("EINTR from epoll_wait\n");
            fflush(stdout);
            _exit(4);
        }
        if (n > 0) {
            char byte;
            read(pipe_fds[0], &byte, 1);
            events++;
        }
    }
}

/* --- a socket read, with or without a receive timeout (SO_RCVTIMEO: EINTR after a ptrace stop) -------- */

static int socket_fds[2];

static void recv_loop(int with_timeout)
{
    struct timeval timeout = {.tv_sec = 3600};
    if (with_timeout)
        setsockopt(socket_fds[0], SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    while (!stop_work) {
        char byte;
        if (recv(socket_fds[0], &byte, 1, 0) < 0) {
            if (errno == EINTR) {
                printf("EINTR from recv\n");
                fflush(stdout);
                _exit(4);
            }
            continue;
        }
        events++;
    }
}

/* --- signals ---------------------------------------------------------------------------------------------- */

#define MAX_SIGNALS 4096
static volatile int signal_count, signal_codes[MAX_SIGNALS], signal_pids[MAX_SIGNALS], signal_values[MAX_SIGNALS];

static void record(siginfo_t *info)
{
    int n = signal_count;
    if (n < MAX_SIGNALS) {
        signal_codes[n] = info->si_code;
        signal_pids[n] = info->si_pid;
        signal_values[n] = info->si_value.sival_int;
        signal_count = n + 1;
    }
}

static void on_queued(int sig, siginfo_t *info, void *context)
{
    (void)sig;
    (void)context;
    record(info);
    if (!strcmp(mode, "masked-handler"))                   /* a long handler: a stop soon after lands in it */
        for (volatile long i = 0; i < 200000000; i++)
            ;
}

static void on_trap(int sig) { (void)sig; }

static void sigwait_loop(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    while (!stop_work) {
        siginfo_t info;
        if (sigwaitinfo(&set, &info) < 0) {
            if (errno == EINTR) {
                printf("EINTR from sigwaitinfo\n");
                fflush(stdout);
                _exit(4);
            }
            continue;
        }
        record(&info);
    }
}

static char *fault_page;                       /* read-only unless being written on purpose */
static volatile uint64_t faults, spurious, writes;

static void on_segv(int sig, siginfo_t *info, void *context)
{
    (void)sig; (void)context;
    if (info->si_code == SEGV_ACCERR && info->si_addr == fault_page + 64)
        faults++;
    else
        spurious++;                             /* a SIGSEGV without a fault of ours: re-sent by someone */
    mprotect(fault_page, 4096, PROT_READ | PROT_WRITE);
}

static void segv_loop(void)
{
    while (!stop_work) {
        mprotect(fault_page, 4096, PROT_READ);
        ((volatile char *)fault_page)[64] = (char)writes;     /* faults, the handler opens the page */
        writes++;
        uint64_t expected = lcg(writes, 2000);
        if (lcg(writes, 2000) != expected)
            corrupt++;
    }
}

/* --- rseq ------------------------------------------------------------------------------------------------- */

static volatile uint64_t rseq_state;            /* (iteration << 1) | inside the critical section */
static volatile uint64_t watch, observed, commits, aborts, stopped_aborted, stopped_committed;
static pid_t leader_tid;

/* One critical section: marks itself inside, spins, then commits by one store that marks it outside. */
static __attribute__((noinline)) int critical_section(struct rseq *area, uint64_t inside, uint64_t outside)
{
    __asm__ goto(
        ".pushsection __rseq_cs, \"aw\"\n\t"
        ".balign 32\n\t"
        "3:\n\t"
        ".long 0x0, 0x0\n\t"
        ".quad 1f, (2f - 1f), 4f\n\t"
        ".popsection\n\t"
        "leaq 3b(%%rip), %%rax\n\t"
        "movq %%rax, 8(%[area])\n\t"
        "1:\n\t"
        "movq %[inside], (%[state])\n\t"
        "movq $100000, %%rcx\n\t"
        "5:\n\t"
        "decq %%rcx\n\t"
        "jnz 5b\n\t"
        "movq %[outside], (%[state])\n\t"
        "2:\n\t"
        ".pushsection __rseq_failure, \"ax\"\n\t"
        ".byte 0x0f, 0xb9, 0x3d\n\t"
        ".long 0x53053053\n\t"
        "4:\n\t"
        "jmp %l[aborted]\n\t"
        ".popsection\n\t"
        :
        : [area] "r"(area), [state] "r"(&rseq_state), [inside] "r"(inside), [outside] "r"(outside)
        : "rax", "rcx", "memory", "cc"
        : aborted);
    return 1;
aborted:
    rseq_state = outside;
    return 0;
}

static void rseq_loop(void)
{
    if (__rseq_size == 0) {
        printf("glibc did not register rseq\n");
        fflush(stdout);
        _exit(3);
    }
    struct rseq *area = (struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);
    for (uint64_t i = 1; !stop_work; i++) {
        int committed = critical_section(area, (i << 1) | 1, i << 1);
        if (committed)
            commits++;
        else
            aborts++;
        uint64_t watched = watch;
        if (watched && watched <= i) {
            if (watched == i) {
                if (committed)
                    stopped_committed++;                /* it went on across the stop: rseq broken */
                else
                    stopped_aborted++;
            }
            watch = 0;
        }
    }
}

static int leader_stopped(int fd)
{
    char buffer[512];
    ssize_t n = pread(fd, buffer, sizeof buffer - 1, 0);
    if (n <= 0)
        return 0;
    buffer[n] = 0;
    char *end = strrchr(buffer, ')');
    return end && end[2] == 't';
}

/* Notes the critical section the leader is stopped in (ptrace stop, state t) while it is stopped. */
static void *watcher(void *arg)
{
    (void)arg;
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", leader_tid);
    int fd = open(path, O_RDONLY);
    while (!stop_work) {
        if (leader_stopped(fd)) {
            uint64_t state = rseq_state;
            if ((state & 1) && leader_stopped(fd) && rseq_state == state && !watch) {
                watch = state >> 1;
                observed++;
                while (leader_stopped(fd) && !stop_work)
                    usleep(20);
            }
        }
        usleep(20);
    }
    return NULL;
}

/* --- seccomp ---------------------------------------------------------------------------------------------- */

static void install(struct sock_filter *program, unsigned short length)
{
    struct sock_fprog fprog = {.len = length, .filter = program};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog))
        _exit(3);
}

#define LOAD(offset) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offset)
#define IF_NOT(value, skip) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, value, 0, skip)
#define RETURN(action) BPF_STMT(BPF_RET | BPF_K, action)

/* nonutf8: wait4 kills the process. filter-nr: only mount is refused (never reads an argument).
   filter-arg: wait4(1, ...) fails with EPERM (reads wait4's pid: evaluated for each zombie). */
static void filters(void)
{
    struct sock_filter kill_wait4[] = {LOAD(0), IF_NOT(61, 1), RETURN(SECCOMP_RET_KILL_PROCESS),
                                       RETURN(SECCOMP_RET_ALLOW)};
    struct sock_filter refuse_mount[] = {LOAD(0), IF_NOT(165, 1), RETURN(SECCOMP_RET_ERRNO | 1),
                                         RETURN(SECCOMP_RET_ALLOW)};
    struct sock_filter pid_one[] = {LOAD(0), IF_NOT(61, 3), LOAD(16), IF_NOT(1, 1), RETURN(SECCOMP_RET_ERRNO | 1),
                                    RETURN(SECCOMP_RET_ALLOW)};
    if (!strcmp(mode, "nonutf8"))
        install(kill_wait4, 4);
    if (!strcmp(mode, "filter-nr"))
        install(refuse_mount, 4);
    struct sock_filter read_only_mmap[] = {LOAD(0), IF_NOT(9, 3), LOAD(32), IF_NOT(1, 1),
                                           RETURN(SECCOMP_RET_ERRNO | 1), RETURN(SECCOMP_RET_ALLOW)};
    if (!strcmp(mode, "filter-arg"))
        install(pid_one, 6);
    struct sock_filter loop_ip[] = {LOAD(0), IF_NOT(61, 4), LOAD(8), BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0xfff),
                                    IF_NOT(0x20, 1), RETURN(SECCOMP_RET_ERRNO | 1), RETURN(SECCOMP_RET_ALLOW)};
    if (!strcmp(mode, "filter-mmap"))
        install(read_only_mmap, 6);
    if (!strcmp(mode, "filter-ip"))
        install(loop_ip, 7);
    if (!strcmp(mode, "mdwe") && prctl(65 /* PR_SET_MDWE */, 1 /* PR_MDWE_REFUSE_EXEC_GAIN */, 0, 0, 0))
        _exit(3);
    /* Syscall user dispatch on, its selector at ALLOW: every call still goes through, until it says BLOCK. */
    static char sud_selector = 0;                          /* SYSCALL_DISPATCH_FILTER_ALLOW */
    if (!strcmp(mode, "sud") && prctl(59 /* PR_SET_SYSCALL_USER_DISPATCH */, 1 /* ON */, 0, 0, &sud_selector))
        _exit(3);
}

/* --- control ---------------------------------------------------------------------------------------------- */

static void report(void)
{
    if (!strcmp(mode, "sigwait") || !strcmp(mode, "sigqueue") || !strcmp(mode, "masked-handler")) {
        int ordered = 1, queued = 1, pid = signal_count ? signal_pids[0] : 0;
        for (int i = 0; i < signal_count; i++) {
            ordered &= signal_values[i] == i + 1;
            queued &= signal_codes[i] == SI_QUEUE && signal_pids[i] == pid;
        }
        printf("signals %d ordered %d queued %d pid %d rounds %lu corrupt %lu\n", signal_count, ordered, queued,
               pid, (unsigned long)rounds, (unsigned long)corrupt);
    } else if (!strcmp(mode, "segv")) {
        printf("writes %lu faults %lu spurious %lu corrupt %lu\n", (unsigned long)writes, (unsigned long)faults,
               (unsigned long)spurious, (unsigned long)corrupt);
    } else if (!strcmp(mode, "rseq")) {
        printf("commits %lu aborts %lu observed %lu stopped_aborted %lu stopped_committed %lu\n",
               (unsigned long)commits, (unsigned long)aborts, (unsigned long)observed,
               (unsigned long)stopped_aborted, (unsigned long)stopped_committed);
    } else {
        printf("rounds %lu corrupt %lu events %lu\n", (unsigned long)rounds, (unsigned long)corrupt,
               (unsigned long)events);
    }
}

static void quit(void)
{
    siginfo_t info;
    stop_work = 1;
    while (waitid(P_ALL, 0, &info, WEXITED | __WALL) == 0)     /* waitid: the nonutf8 filter kills wait4 */
        ;
    _exit(corrupt ? 5 : 0);
}

static void sigsuspend_loop(void)
{
    sigset_t all, none;
    struct sigaction trap = {0};
    trap.sa_handler = on_trap;
    sigaction(SIGTRAP, &trap, NULL);
    sigfillset(&all);
    sigemptyset(&none);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    while (!stop_work)
        sigsuspend(&none);
}

static void *remapper(void *arg)
{
    const char *request = getenv("ZC_REMAP_REQUEST"), *done = getenv("ZC_REMAP_DONE");
    (void)arg;
    for (;;) {
        unsigned long address;
        FILE *file = fopen(request, "r");
        if (file && fscanf(file, "%lx", &address) == 1) {
            void *page = mmap((void *)address, 4096, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
            if (page != MAP_FAILED)
                memcpy(page, "theirs", 7);
            FILE *answer = fopen(done, "w");
            fprintf(answer, "%lx %d\n", address, page != MAP_FAILED);
            fclose(answer);
            fclose(file);
            unlink(request);
        } else if (file) {
            fclose(file);
        }
        usleep(200);
    }
    return NULL;
}

static void *control(void *arg)
{
    (void)arg;
    char line[128];
    for (;;) {
        int count;
        if (!fgets(line, sizeof line, stdin)) {
            if (ferror(stdin) && errno == EINTR) {     /* a signal handled by this thread: read on */
                clearerr(stdin);
                continue;
            }
            break;
        }
        if (sscanf(line, "zombies %d", &count) == 1) {
            make_zombies(count);
            printf("zombies %d\n", count);
        } else if (!strncmp(line, "poke", 4)) {
            write(pipe_fds[1], "x", 1);
            send(socket_fds[1], "x", 1, 0);
            printf("poked\n");
        } else if (!strncmp(line, "ignore-trap", 11)) {   /* flushes a SIGTRAP queued for any thread */
            signal(SIGTRAP, SIG_IGN);
            printf("ignored\n");
        } else if (!strncmp(line, "report", 6)) {
            report();
        } else if (!strncmp(line, "quit", 4)) {
            quit();
        }
        fflush(stdout);
    }
    quit();
    return NULL;
}

static void prepare(void)
{
    struct sigaction action = {0};
    sigset_t set;
    pipe(pipe_fds);
    socketpair(AF_UNIX, SOCK_STREAM, 0, socket_fds);
    if (!strcmp(mode, "udp-timeout")) {                    /* a UDP pair: poke sends to the reading one */
        struct sockaddr_in address = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t length = sizeof address;
        close(socket_fds[0]);
        close(socket_fds[1]);
        socket_fds[0] = socket(AF_INET, SOCK_DGRAM, 0);
        socket_fds[1] = socket(AF_INET, SOCK_DGRAM, 0);
        bind(socket_fds[0], (struct sockaddr *)&address, sizeof address);
        getsockname(socket_fds[0], (struct sockaddr *)&address, &length);
        connect(socket_fds[1], (struct sockaddr *)&address, sizeof address);
    }
    fault_page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memcpy(fault_page, "\x0f\x05", 2);                     /* a `syscall` instruction, never executable */
    mprotect(fault_page, 4096, PROT_READ);
    leader_tid = gettid();
    if (!strcmp(mode, "sigwait")) {                        /* blocked everywhere: taken only by sigwaitinfo */
        sigemptyset(&set);
        sigaddset(&set, SIGUSR1);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
    }
    if (!strcmp(mode, "sigqueue") || !strcmp(mode, "masked-handler")) {
        action.sa_sigaction = on_queued;
        action.sa_flags = SA_SIGINFO | SA_RESTART;
        if (!strcmp(mode, "masked-handler")) {         /* as Go's runtime: every signal blocked in a handler */
            struct sigaction trap = {0};
            sigfillset(&action.sa_mask);
            trap.sa_handler = on_trap;                 /* and a SIGTRAP handler of its own */
            sigaction(SIGTRAP, &trap, NULL);
        }
        sigaction(SIGRTMIN + 1, &action, NULL);
        sigemptyset(&action.sa_mask);
    }
    if (!strcmp(mode, "segv")) {
        action.sa_sigaction = on_segv;
        action.sa_flags = SA_SIGINFO;
        sigaction(SIGSEGV, &action, NULL);
    }
    if (!strcmp(mode, "sigtrap-ignored"))
        signal(SIGTRAP, SIG_IGN);
    if (!strcmp(mode, "nonutf8"))
        prctl(PR_SET_NAME, "\xff\xfe-zc-\xc3", 0, 0, 0);
    filters();
}

int main(int argc, char **argv)
{
    pthread_t thread;
    sigset_t set, old;
    mode = argv[1];
    prepare();
    make_zombies(atoi(argv[2]));
    /* The control thread takes no signal meant for the leader. */
    sigemptyset(&set);
    sigaddset(&set, SIGRTMIN + 1);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    pthread_create(&thread, NULL, control, NULL);
    if (!strcmp(mode, "rseq"))
        pthread_create(&thread, NULL, watcher, NULL);
    if (!strcmp(mode, "remap"))
        pthread_create(&thread, NULL, remapper, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    printf("ready %p\n", (void *)fault_page);
    fflush(stdout);
    if (!strcmp(mode, "epoll"))
        epoll_loop(-1, 0);
    else if (!strcmp(mode, "epoll-busy"))
        epoll_loop(1, 1);
    else if (!strcmp(mode, "sigwait"))
        sigwait_loop();
    else if (!strcmp(mode, "segv"))
        segv_loop();
    else if (!strcmp(mode, "recv") || !strcmp(mode, "recv-timeout") || !strcmp(mode, "udp-timeout"))
        recv_loop(strcmp(mode, "recv") != 0);
    else if (!strcmp(mode, "rseq"))
        rseq_loop();
    else if (!strcmp(mode, "sigsuspend"))
        sigsuspend_loop();
    else
        busy();
    for (;;)
        pause();
}
