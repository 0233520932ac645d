/* A detached thread for work that outlives the request that started it
 * (a move, a drain, a port's connection): nobody joins it. */
#include <pthread.h>

#include "daemon.h"

int daemon_thread(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    pthread_attr_t a;
    int rc = pthread_attr_init(&a);
    if (rc != 0)
        return rc;
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    rc = pthread_create(&t, &a, fn, arg);
    pthread_attr_destroy(&a);
    return rc;
}
