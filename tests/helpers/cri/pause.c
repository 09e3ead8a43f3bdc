/* The pod sandbox's process for zombie-cleaner's tests: what the kubelet's pause image does, in a few
 * lines. It sleeps until killed, ends on SIGINT/SIGTERM, and reaps every child that ends (SIGCHLD), so
 * that in a pod sharing one PID namespace it is the init that reaps orphans.
 * Built with `gcc -static` by tests/helpers/cri/images.py; no libc is needed in the image. */
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int signo)
{
    (void)signo;
    _exit(0);
}

static void reap(int signo)
{
    (void)signo;
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
}

int main(int argc, char **argv)
{
    struct sigaction action;

    if (argc > 1 && strcmp(argv[1], "-v") == 0) {
        static const char version[] = "zombie-cleaner-test pause\n";
        return write(STDOUT_FILENO, version, sizeof(version) - 1) < 0;
    }
    memset(&action, 0, sizeof(action));
    sigemptyset(&action.sa_mask);
    action.sa_handler = stop;
    if (sigaction(SIGINT, &action, NULL) < 0 || sigaction(SIGTERM, &action, NULL) < 0)
        return 1;
    action.sa_handler = reap;
    action.sa_flags = SA_NOCLDSTOP | SA_RESTART;
    if (sigaction(SIGCHLD, &action, NULL) < 0)
        return 2;
    for (;;)
        pause();
}
