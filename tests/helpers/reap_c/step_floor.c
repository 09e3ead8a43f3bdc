/* The floor of a reap in place on this machine: the same wait4 single steps as reaper.reap, from C.
 *
 *   step_floor PID SYSCALL_ADDRESS_HEX PIDS_FILE
 *
 * Seizes PID, stops it, runs wait4(pid, NULL, WNOHANG | __WALL, NULL) for each pid of PIDS_FILE from the
 * `syscall` instruction at SYSCALL_ADDRESS (SETREGS, SINGLESTEP, wait, GETSIGINFO per zombie, as the module
 * does), restores the registers and detaches. Prints "floor <seconds of the injections alone> <count>".
 * Used by bench/reap_stop.py to show what the kernel's single step costs here, apart from Python.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>

int main(int argc, char **argv)
{
    pid_t pid = atoi(argv[1]), pids[4096];
    unsigned long address = strtoul(argv[2], NULL, 16);
    int count = 0, status;
    FILE *file = fopen(argv[3], "r");
    while (count < 4096 && fscanf(file, "%d", &pids[count]) == 1)
        count++;
    if (ptrace(PTRACE_SEIZE, pid, 0, 0) || ptrace(PTRACE_INTERRUPT, pid, 0, 0))
        return 1;
    waitpid(pid, &status, __WALL);
    struct user_regs_struct saved, regs;
    siginfo_t info;
    ptrace(PTRACE_GETREGS, pid, 0, &saved);
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (int i = 0; i < count; i++) {
        regs = saved;
        regs.rax = 61, regs.orig_rax = -1, regs.rip = address;
        regs.rdi = pids[i], regs.rsi = 0, regs.rdx = WNOHANG | __WALL, regs.r10 = regs.r8 = regs.r9 = 0;
        ptrace(PTRACE_SETREGS, pid, 0, &regs);
        ptrace(PTRACE_SINGLESTEP, pid, 0, 0);
        while (waitpid(pid, &status, __WALL | WNOHANG) == 0)
            sched_yield();
        ptrace(PTRACE_GETSIGINFO, pid, 0, &info);
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    ptrace(PTRACE_SETREGS, pid, 0, &saved);
    ptrace(PTRACE_DETACH, pid, 0, 0);
    printf("floor %.6f %d\n", (end.tv_sec - start.tv_sec) + (end.tv_nsec - start.tv_nsec) / 1e9, count);
    return 0;
}
