/* Signal names as `kill` accepts them: "KILL", "SIGKILL", "9", "SIGRTMIN+3". */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hull.h"

static const struct {
    const char *name;
    int num;
} signals[] = {
    {"HUP", SIGHUP},       {"INT", SIGINT},   {"QUIT", SIGQUIT},     {"ILL", SIGILL},
    {"TRAP", SIGTRAP},     {"ABRT", SIGABRT}, {"IOT", SIGIOT},       {"BUS", SIGBUS},
    {"FPE", SIGFPE},       {"KILL", SIGKILL}, {"USR1", SIGUSR1},     {"SEGV", SIGSEGV},
    {"USR2", SIGUSR2},     {"PIPE", SIGPIPE}, {"ALRM", SIGALRM},     {"TERM", SIGTERM},
    {"STKFLT", SIGSTKFLT}, {"CHLD", SIGCHLD}, {"CONT", SIGCONT},     {"STOP", SIGSTOP},
    {"TSTP", SIGTSTP},     {"TTIN", SIGTTIN}, {"TTOU", SIGTTOU},     {"URG", SIGURG},
    {"XCPU", SIGXCPU},     {"XFSZ", SIGXFSZ}, {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF},
    {"WINCH", SIGWINCH},   {"IO", SIGIO},     {"POLL", SIGPOLL},     {"PWR", SIGPWR},
    {"SYS", SIGSYS},
};

static int parse_number(const char *s)
{
    char *end;
    long n = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || n <= 0 || n >= NSIG)
        return -1;
    return (int)n;
}

int hull_signal_parse(const char *s)
{
    if (s == NULL || *s == '\0')
        return -1;
    if (*s >= '0' && *s <= '9')
        return parse_number(s);
    if (strncasecmp(s, "SIG", 3) == 0)
        s += 3;
    for (size_t i = 0; i < sizeof(signals) / sizeof(signals[0]); i++)
        if (strcasecmp(signals[i].name, s) == 0)
            return signals[i].num;
    /* RTMIN, RTMIN+n, RTMAX, RTMAX-n */
    if (strncasecmp(s, "RTMIN", 5) == 0 || strncasecmp(s, "RTMAX", 5) == 0) {
        bool min = strncasecmp(s, "RTMIN", 5) == 0;
        int base = min ? SIGRTMIN : SIGRTMAX;
        const char *rest = s + 5;
        if (*rest == '\0')
            return base;
        if ((min && *rest != '+') || (!min && *rest != '-'))
            return -1;
        int off = parse_number(rest + 1);
        if (off < 0)
            return -1;
        int n = min ? base + off : base - off;
        return n >= SIGRTMIN && n <= SIGRTMAX ? n : -1;
    }
    return -1;
}
