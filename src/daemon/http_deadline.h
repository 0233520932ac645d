/* A deadline for each request head (http_deadline.c). */
#ifndef HULLD_HTTP_DEADLINE_H
#define HULLD_HTTP_DEADLINE_H

#include <microhttpd.h>

/* MHD_OPTION_NOTIFY_CONNECTION: a connection's start and end. */
void http_deadline_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code);
/* The connection's request head is whole (the handler's first call). */
void http_deadline_head_done(struct MHD_Connection *conn);
/* Its request is answered: the next head's time starts. */
void http_deadline_next(struct MHD_Connection *conn);
/* The watcher thread, which closes connections past their deadline. */
int http_deadline_start(unsigned seconds);
void http_deadline_stop(void);

#endif
