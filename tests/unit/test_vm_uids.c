/* vm/uids.c: QEMU uids claimed one per VM. They were a 16-bit hash of the
 * id, so two VMs could share a uid and its per-user kernel counts. */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "unit.h"
#include "util/fs.h"
#include "vm/vm.h"

#define NVMS 300

struct fixture {
    char top[64];
    char claims[128];
    char dirs[NVMS][128];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    snprintf(f->top, sizeof(f->top), "/tmp/hull-vmuids-XXXXXX");
    if (mkdtemp(f->top) == NULL)
        return -1;
    char top[sizeof(f->top)]; /* not f's own: snprintf's source and target may not overlap */
    memcpy(top, f->top, sizeof(top));
    snprintf(f->claims, sizeof(f->claims), "%s/claims", top);
    for (int i = 0; i < NVMS; i++) {
        snprintf(f->dirs[i], sizeof(f->dirs[i]), "%s/vm-%d", top, i);
        if (mkdir(f->dirs[i], 0700) < 0)
            return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    hull_error e = NULL;
    int r = hull_rm_rf_at(AT_FDCWD, f->top, &e);
    hull_error_free(&e);
    free(f);
    return r;
}

static uid_t claim(struct fixture *f, int i, uint32_t first)
{
    hull_error e = NULL;
    uid_t uid = 0;
    int r = vm_uid_claim_at(f->claims, f->dirs[i], first, &uid, &e);
    assert_int_equal(r, 0);
    assert_null(e);
    return uid;
}

/* Every VM whose id hashes to one slot still gets a uid of its own. */
static void colliding_vms_get_uids_of_their_own(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < NVMS; i++)
        assert_int_equal(claim(f, i, 7), VM_UID_BASE + 7 + i);
    /* Asked again for the same directory: the same uid, nothing more taken. */
    assert_int_equal(claim(f, 5, 7), VM_UID_BASE + 12);
    /* The last slot wraps around to the first. */
    uid_t last = claim(f, 0, VM_UIDS - 1);
    assert_int_equal(last, VM_UID_BASE + 7); /* dirs[0] already holds 7 */
    hull_error e = NULL;
    uid_t u = 0;
    assert_int_equal(vm_uid_claim_at(f->claims, f->top, VM_UIDS - 1, &u, &e), 0);
    assert_int_equal(u, VM_UID_BASE + VM_UIDS - 1);
    assert_int_equal(vm_uid_claim_at(f->claims, f->claims, VM_UIDS - 1, &u, &e), 0);
    assert_int_equal(u, VM_UID_BASE); /* wrapped */
}

/* Delete releases the uid; a VM whose directory is gone without a delete
 * (killed half-way) leaves a stale claim that the next claim takes; an
 * empty claim (its writer killed) is stale too. A live VM's is never. */
static void released_and_stale_claims_are_taken_again(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < 4; i++)
        claim(f, i, 100);
    vm_uid_release_at(f->claims, f->dirs[1], VM_UID_BASE + 101);
    assert_int_equal(claim(f, 10, 100), VM_UID_BASE + 101);
    /* Released only by its own VM: dirs[3] cannot free dirs[2]'s uid. */
    vm_uid_release_at(f->claims, f->dirs[3], VM_UID_BASE + 102);
    assert_int_equal(claim(f, 11, 100), VM_UID_BASE + 104);
    assert_int_equal(rmdir(f->dirs[2]), 0);
    assert_int_equal(claim(f, 12, 100), VM_UID_BASE + 102);
    char p[160];
    snprintf(p, sizeof(p), "%s/%u", f->claims, 105u);
    int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(claim(f, 13, 105), VM_UID_BASE + 105);
}

/* At start: a VM keeps its uid, claims it again when nobody has it (the
 * claims are gone after a reboot), and moves when another VM has it. */
static void a_start_keeps_or_moves_the_uid(void **state)
{
    struct fixture *f = *state;
    hull_error e = NULL;
    bool moved = true;
    uid_t a = claim(f, 0, 300);
    assert_int_equal(vm_uid_keep_at(f->claims, f->dirs[0], &a, &moved, &e), 0);
    assert_int_equal(a, VM_UID_BASE + 300);
    assert_false(moved);
    uid_t b = VM_UID_BASE + 400; /* recorded, never claimed (before a reboot) */
    assert_int_equal(vm_uid_keep_at(f->claims, f->dirs[1], &b, &moved, &e), 0);
    assert_int_equal(b, VM_UID_BASE + 400);
    assert_false(moved);
    assert_int_equal(claim(f, 2, 400), VM_UID_BASE + 401); /* now claimed */
    uid_t c = VM_UID_BASE + 300;                           /* the same uid as dirs[0]'s */
    assert_int_equal(vm_uid_keep_at(f->claims, f->dirs[3], &c, &moved, &e), 0);
    assert_true(moved);
    assert_int_equal(c, VM_UID_BASE + 301);
    uid_t legacy = 1234; /* outside the range: moved into it */
    assert_int_equal(vm_uid_keep_at(f->claims, f->dirs[4], &legacy, &moved, &e), 0);
    assert_true(moved);
    assert_int_equal(legacy, VM_UID_BASE);
    assert_null(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(colliding_vms_get_uids_of_their_own, setup, teardown),
        cmocka_unit_test_setup_teardown(released_and_stale_claims_are_taken_again, setup, teardown),
        cmocka_unit_test_setup_teardown(a_start_keeps_or_moves_the_uid, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
