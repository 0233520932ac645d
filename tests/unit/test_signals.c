/* hull_signal_parse: the names and numbers `hull kill` accepts. */
#include <signal.h>

#include "unit.h"

static void names(void **state)
{
    (void)state;
    assert_int_equal(hull_signal_parse("KILL"), SIGKILL);
    assert_int_equal(hull_signal_parse("TERM"), SIGTERM);
    assert_int_equal(hull_signal_parse("HUP"), SIGHUP);
    assert_int_equal(hull_signal_parse("USR1"), SIGUSR1);
    assert_int_equal(hull_signal_parse("USR2"), SIGUSR2);
    assert_int_equal(hull_signal_parse("WINCH"), SIGWINCH);
    assert_int_equal(hull_signal_parse("CHLD"), SIGCHLD);
    assert_int_equal(hull_signal_parse("STOP"), SIGSTOP);
    assert_int_equal(hull_signal_parse("CONT"), SIGCONT);
    assert_int_equal(hull_signal_parse("SYS"), SIGSYS);
    assert_int_equal(hull_signal_parse("IOT"), SIGABRT);
    assert_int_equal(hull_signal_parse("POLL"), SIGIO);
}

static void sig_prefix_and_case(void **state)
{
    (void)state;
    assert_int_equal(hull_signal_parse("SIGKILL"), SIGKILL);
    assert_int_equal(hull_signal_parse("sigterm"), SIGTERM);
    assert_int_equal(hull_signal_parse("SigUsr1"), SIGUSR1);
    assert_int_equal(hull_signal_parse("kill"), SIGKILL);
    /* "SIG" alone, or a prefix twice, is no signal. */
    assert_int_equal(hull_signal_parse("SIG"), -1);
    assert_int_equal(hull_signal_parse("SIGSIGKILL"), -1);
}

static void numbers(void **state)
{
    (void)state;
    assert_int_equal(hull_signal_parse("9"), 9);
    assert_int_equal(hull_signal_parse("1"), 1);
    assert_int_equal(hull_signal_parse("15"), 15);
    assert_int_equal(hull_signal_parse("64"), 64);
    assert_int_equal(hull_signal_parse("0"), -1);
    assert_int_equal(hull_signal_parse("65"), -1);
    assert_int_equal(hull_signal_parse("-9"), -1);
    assert_int_equal(hull_signal_parse("9x"), -1);
    assert_int_equal(hull_signal_parse("99999999999999999999"), -1);
    assert_int_equal(hull_signal_parse(" 9"), -1);
}

static void realtime(void **state)
{
    (void)state;
    assert_int_equal(hull_signal_parse("RTMIN"), SIGRTMIN);
    assert_int_equal(hull_signal_parse("SIGRTMIN"), SIGRTMIN);
    assert_int_equal(hull_signal_parse("RTMIN+1"), SIGRTMIN + 1);
    assert_int_equal(hull_signal_parse("SIGRTMIN+3"), SIGRTMIN + 3);
    assert_int_equal(hull_signal_parse("rtmin+3"), SIGRTMIN + 3);
    assert_int_equal(hull_signal_parse("RTMAX"), SIGRTMAX);
    assert_int_equal(hull_signal_parse("RTMAX-1"), SIGRTMAX - 1);
    assert_int_equal(hull_signal_parse("SIGRTMAX-2"), SIGRTMAX - 2);
    int span = SIGRTMAX - SIGRTMIN;
    char buf[32];
    snprintf(buf, sizeof(buf), "RTMIN+%d", span);
    assert_int_equal(hull_signal_parse(buf), SIGRTMAX);
    snprintf(buf, sizeof(buf), "RTMIN+%d", span + 1);
    assert_int_equal(hull_signal_parse(buf), -1);
    snprintf(buf, sizeof(buf), "RTMAX-%d", span + 1);
    assert_int_equal(hull_signal_parse(buf), -1);
    /* The sign must point inside the range. */
    assert_int_equal(hull_signal_parse("RTMIN-1"), -1);
    assert_int_equal(hull_signal_parse("RTMAX+1"), -1);
    assert_int_equal(hull_signal_parse("RTMIN+"), -1);
    assert_int_equal(hull_signal_parse("RTMIN+x"), -1);
    assert_int_equal(hull_signal_parse("RTMINIMUM"), -1);
}

static void rejects(void **state)
{
    (void)state;
    assert_int_equal(hull_signal_parse(NULL), -1);
    assert_int_equal(hull_signal_parse(""), -1);
    assert_int_equal(hull_signal_parse("FOO"), -1);
    assert_int_equal(hull_signal_parse("SIGFOO"), -1);
    assert_int_equal(hull_signal_parse("KILLER"), -1);
    assert_int_equal(hull_signal_parse("KIL"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(names),   cmocka_unit_test(sig_prefix_and_case),
        cmocka_unit_test(numbers), cmocka_unit_test(realtime),
        cmocka_unit_test(rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
