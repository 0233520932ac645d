/* The sandbox table (sbx_table.c) and its entry, shared by sandboxes.c (the API)
 * and sbx_incoming.c (sandboxes that arrive other than by a create:
 * adopted at start-up, moved in from another node, restored from a
 * cluster snapshot). Handlers see struct sbx only through procs.h. */
#ifndef HULLD_SBX_TABLE_H
#define HULLD_SBX_TABLE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "daemon.h"

struct sbx {
    char id[40];
    char tenant[72];
    char container[64];
    char image[512]; /* "REPOSITORY@DIGEST" it was made from, or "" */
    char *spec;      /* the create request it was made with (templates.c) */
    pid_t pid;
    int sock;
    int kill_fd; /* eventfd handed to every exec: written on destroy */
    pthread_mutex_t op;
    /* A keeper connection for attaching more (procs.h sbx_connect), so a
     * stream can start while an exec holds op. */
    int attach_sock;
    pthread_mutex_t attach_mu;
    uint64_t last_used_ns;
    time_t last_used;
    unsigned lifetime_s;
    bool paused, gone;
    /* sandboxes_end: another node has it now and this copy is being
     * destroyed. Set under the table's lock; such an entry is found by no
     * lookup but still counts as here (sandboxes_here, daemon.h). */
    bool ending;
    bool microvm; /* its keeper is sbx_vm.c's; paused = on disk */
    int refs;
    struct sbx *next;
};

/* The live sandbox id of tenant (NULL: any), with a reference. */
struct sbx *sbx_find(const char *id, const char *tenant);
/* sbx_find of id, marked ending (NULL when not here or ending already). */
struct sbx *sbx_find_to_end(const char *id);
/* Out of the table (its reference dropped); the caller's stays. Once:
 * a second call does nothing. */
void sbx_unlink(struct sbx *s);
/* Whether s is still in the table, not ending. */
bool sbx_listed(struct sbx *s);
/* With a reference: the first sandbox to end now (all: any; else gone, or
 * idle past its lifetime at now and not busy), NULL when none. */
struct sbx *sbx_table_victim(bool all, uint64_t now);
/* One request to the keeper, the op lock held by the caller. A keeper that
 * does not answer is gone, and so is its sandbox. */
int sbx_keeper_send(struct sbx *s, const char *op, json_object *extra, const void *data, size_t len,
                    int fd, struct frame *reply, hull_error *err);
/* A new entry, one reference (the caller's); NULL when out of memory. */
struct sbx *sbx_new(const char *id, const char *tenant, const char *container);
/* Into the table (which takes a reference of its own). */
void sbx_table_push(struct sbx *s);
/* A keeper request under s's op lock held by the caller (sandboxes.c's). */
int sbx_keeper_call(struct sbx *s, const char *op, json_object *extra, struct frame *reply,
                    hull_error *err);
/* The attach connection over via (the main socket, op lock held). */
int sbx_attach_over(struct sbx *s, int via, hull_error *err);
/* The table's lock, and the sandboxes of tenant counted against its
 * quota under it: those in the table and those arriving (sbx_incoming.c). */
void sbx_table_lock(void);
void sbx_table_unlock(void);
/* Into the table, its lock held (the table takes a reference). */
void sbx_table_insert_locked(struct sbx *s);
unsigned sbx_tenant_count_locked(const char *tenant);
unsigned sbx_arriving_locked(const char *tenant);

#endif
