/* vm/vm.c vm_log_said: what a VM's console or QEMU log says in an error —
 * a panic's reason, not only its last line ("Kernel Offset: disabled"). */
#include <sys/stat.h>

#include "unit.h"
#include "vm/vm.h"

static void write_log(const char *dir, const char *text)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/run", dir);
    mkdir(p, 0700);
    snprintf(p, sizeof(p), "%s/run/console.log", dir);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void what_the_log_said(void **state)
{
    (void)state;
    char dir[] = "/tmp/hull-vmlog-XXXXXX", out[600], p[512];
    assert_non_null(mkdtemp(dir));
    struct vm vm;
    memset(&vm, 0, sizeof(vm));
    snprintf(vm.dir, sizeof(vm.dir), "%s", dir);

    vm_log_said(&vm, "console.log", out, sizeof(out));
    assert_string_equal(out, ""); /* no log yet */

    write_log(dir, "booting\r\nhull-agent: ready\r\n\r\n");
    vm_log_said(&vm, "console.log", out, sizeof(out));
    assert_string_equal(out, "hull-agent: ready");

    write_log(dir,
              "[   20.6] Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b\n"
              "[   20.6] CPU: 0 PID: 1 Comm: init\n"
              "[   20.6] Kernel Offset: disabled\n");
    vm_log_said(&vm, "console.log", out, sizeof(out));
    assert_string_equal(out, "Kernel panic - not syncing: Attempted to kill init! "
                             "exitcode=0x0000000b; [   20.6] Kernel Offset: disabled");

    snprintf(p, sizeof(p), "%s/run/console.log", dir);
    unlink(p);
    snprintf(p, sizeof(p), "%s/run", dir);
    rmdir(p);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(what_the_log_said)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
