// SPDX-License-Identifier: GPL-2.0
/*
 * The query socket server: one thread, one epoll set, non-blocking unix
 * stream sockets.  A client connects, sends one line, gets one answer and
 * is closed.  Every client has a buffer of one line and a deadline
 * MK_QUERY_CLIENT_MS after its accept; since all deadlines are the same
 * length, the list of clients in accept order is also the list in deadline
 * order, and the oldest is the one closed first, both when its time is up
 * and when MK_QUERY_CLIENTS_MAX are connected and another comes.
 *
 * Locking: mk_qs.qs_svc and the epoll set are written by
 * mk_query_server_start() before the thread starts and by
 * mk_query_server_stop() after it has been joined; the server thread alone
 * owns the clients, the answer buffer and the counters.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/un.h>

#include "mailktls.h"
#include "listen_sock.h"
#include "clock.h"
#include "log.h"
#include "query.h"

#define MK_QS_EVENTS 64		/* epoll events taken per wakeup */
#define MK_QS_ACCEPTS 64	/* accepts per wakeup, so clients are not starved */
#define MK_QS_BACKLOG 512
#define MK_QS_PAUSE_MS 100	/* listener rests this long when out of descriptors */
#define MK_QS_REPORT_MS 60000	/* at most one line this often about closed clients */

struct mk_qclient {
	struct mk_qclient *qc_older;	/* accept order, oldest first */
	struct mk_qclient *qc_newer;
	int qc_fd;			/* -1 once closed, until freed */
	int64_t qc_deadline;		/* CLOCK_MONOTONIC ms */
	char *qc_out;			/* answer bytes not sent yet, or NULL */
	size_t qc_out_len;
	size_t qc_out_pos;
	size_t qc_got;			/* bytes in qc_line */
	char qc_line[MAILKTLS_QUERY_LINE_MAX + 1];
};

static struct {
	struct mk_service qs_svc;
	int qs_epoll_fd;

	/* server thread only */
	struct mk_qclient *qs_oldest;
	struct mk_qclient *qs_newest;
	struct mk_qclient *qs_closed;	/* freed after the events at hand */
	size_t qs_nclients;
	int64_t qs_paused_until;	/* listener not watched before this; 0: watched */
	size_t qs_expired;		/* closed at the deadline since the last report */
	size_t qs_evicted;		/* closed for room since the last report */
	int64_t qs_report_at;
	char qs_answer[MAILKTLS_QUERY_ANSWER_MAX];
	char qs_drain[4096];
} mk_qs = {
	.qs_svc = MK_SERVICE_INIT("query socket"),
	.qs_epoll_fd = -1,
};

/* --- clients --------------------------------------------------------------- */

static void mk_qs_unlink(struct mk_qclient *c)
{
	if (c->qc_older)
		c->qc_older->qc_newer = c->qc_newer;
	else
		mk_qs.qs_oldest = c->qc_newer;
	if (c->qc_newer)
		c->qc_newer->qc_older = c->qc_older;
	else
		mk_qs.qs_newest = c->qc_older;
	mk_qs.qs_nclients--;
}

/*
 * Close @c now; free it once the events of this wakeup are handled, as one
 * of them may still name it.
 */
static void mk_qs_close(struct mk_qclient *c)
{
	mk_qs_unlink(c);
	close(c->qc_fd);
	c->qc_fd = -1;
	free(c->qc_out);
	c->qc_out = NULL;
	c->qc_newer = mk_qs.qs_closed;
	mk_qs.qs_closed = c;
}

static void mk_qs_free_closed(void)
{
	struct mk_qclient *c;

	while ((c = mk_qs.qs_closed)) {
		mk_qs.qs_closed = c->qc_newer;
		free(c);
	}
}

static void mk_qs_add(int fd, int64_t now)
{
	struct epoll_event ev = { .events = EPOLLIN };
	struct mk_qclient *c = calloc(1, sizeof(*c));

	if (!c) {
		close(fd);
		return;
	}
	c->qc_fd = fd;
	c->qc_deadline = now + MK_QUERY_CLIENT_MS;
	ev.data.ptr = c;
	if (epoll_ctl(mk_qs.qs_epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		close(fd);
		free(c);
		return;
	}
	c->qc_older = mk_qs.qs_newest;
	if (mk_qs.qs_newest)
		mk_qs.qs_newest->qc_newer = c;
	else
		mk_qs.qs_oldest = c;
	mk_qs.qs_newest = c;
	mk_qs.qs_nclients++;
}

/*
 * Answered: bytes the client sent after its line would make the close
 * reset the connection (AF_UNIX does, like TCP), and the client would lose
 * the answer it has not read yet, so up to 16 KiB are read and dropped
 * first.
 */
static void mk_qs_finish(struct mk_qclient *c)
{
	int i;

	for (i = 0; i < 4; i++)
		if (recv(c->qc_fd, mk_qs.qs_drain, sizeof(mk_qs.qs_drain), MSG_DONTWAIT) <= 0)
			break;
	mk_qs_close(c);
}

/* Send what is left of the answer; close when it is all out or never will be. */
static void mk_qs_send(struct mk_qclient *c, const char *buf, size_t len)
{
	struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = c };
	ssize_t n = send(c->qc_fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		n = 0;
	if (n < 0) {
		mk_qs_close(c);
		return;
	}
	if ((size_t)n == len) {
		mk_qs_finish(c);
		return;
	}
	if (!c->qc_out) {
		c->qc_out = malloc(len - (size_t)n);
		if (!c->qc_out || epoll_ctl(mk_qs.qs_epoll_fd, EPOLL_CTL_MOD, c->qc_fd, &ev) < 0) {
			mk_qs_close(c);
			return;
		}
		memcpy(c->qc_out, buf + n, len - (size_t)n);
		c->qc_out_len = len - (size_t)n;
		c->qc_out_pos = 0;
	} else {
		c->qc_out_pos += (size_t)n;
	}
}

static void mk_qs_answer(struct mk_qclient *c, size_t len)
{
	size_t alen = mk_query_answer(c->qc_line, len, mk_qs.qs_answer, sizeof(mk_qs.qs_answer));

	if (!alen)
		mk_qs_finish(c);	/* a CLAUSE without answer */
	else
		mk_qs_send(c, mk_qs.qs_answer, alen);
}

/* Bytes came: answer once the line is whole, or once it cannot fit. */
static void mk_qs_read(struct mk_qclient *c)
{
	ssize_t n = recv(c->qc_fd, c->qc_line + c->qc_got, sizeof(c->qc_line) - c->qc_got,
			 MSG_DONTWAIT);
	char *nl;

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		mk_qs_close(c);		/* gone before the end of its line */
		return;
	}
	nl = memchr(c->qc_line + c->qc_got, '\n', (size_t)n);
	c->qc_got += (size_t)n;
	if (nl)
		mk_qs_answer(c, (size_t)(nl - c->qc_line));
	else if (c->qc_got == sizeof(c->qc_line))
		mk_qs_answer(c, c->qc_got);	/* the parser says "toolong" */
}

static void mk_qs_client_event(struct mk_qclient *c, uint32_t events)
{
	if (c->qc_fd < 0)
		return;
	if (!c->qc_out)
		mk_qs_read(c);
	else if (events & (EPOLLERR | EPOLLHUP))
		mk_qs_close(c);
	else
		mk_qs_send(c, c->qc_out + c->qc_out_pos, c->qc_out_len - c->qc_out_pos);
}

/* --- listener -------------------------------------------------------------- */

static void mk_qs_watch_listener(bool on)
{
	struct epoll_event ev = { .events = on ? EPOLLIN : 0, .data.ptr = &mk_qs.qs_svc.se_listen_fd };

	epoll_ctl(mk_qs.qs_epoll_fd, EPOLL_CTL_MOD, mk_qs.qs_svc.se_listen_fd, &ev);
}

static void mk_qs_accept(int64_t now)
{
	int i, fd;

	for (i = 0; i < MK_QS_ACCEPTS; i++) {
		fd = accept4(mk_qs.qs_svc.se_listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			if (mk_qs.qs_nclients >= MK_QUERY_CLIENTS_MAX) {
				mk_qs_close(mk_qs.qs_oldest);
				mk_qs.qs_evicted++;
			}
			mk_qs_add(fd, now);
			continue;
		}
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
			/* Readable until accepted: rest rather than spin. */
			mk_qs.qs_paused_until = now + MK_QS_PAUSE_MS;
			mk_qs_watch_listener(false);
		}
		if (errno != EINTR && errno != ECONNABORTED)
			return;
	}
}

/* --- the loop -------------------------------------------------------------- */

/* Close every client whose deadline has passed: they are the oldest. */
static void mk_qs_expire(int64_t now)
{
	while (mk_qs.qs_oldest && mk_qs.qs_oldest->qc_deadline <= now) {
		mk_qs_close(mk_qs.qs_oldest);
		mk_qs.qs_expired++;
	}
	if (mk_qs.qs_paused_until && mk_qs.qs_paused_until <= now) {
		mk_qs.qs_paused_until = 0;
		mk_qs_watch_listener(true);
	}
}

/* One line now and then, never one per client: clients can be many. */
static void mk_qs_report(int64_t now)
{
	if (now < mk_qs.qs_report_at || (!mk_qs.qs_expired && !mk_qs.qs_evicted))
		return;
	mk_log(LOG_INFO, "query socket: closed %zu clients that sent no line within %d ms, %zu for room (at most %d at once)",
	       mk_qs.qs_expired, MK_QUERY_CLIENT_MS, mk_qs.qs_evicted, MK_QUERY_CLIENTS_MAX);
	mk_qs.qs_expired = mk_qs.qs_evicted = 0;
	mk_qs.qs_report_at = now + MK_QS_REPORT_MS;
}

/* Milliseconds until the next deadline or the listener's rest ends; -1: none. */
static int mk_qs_timeout(int64_t now)
{
	int64_t next = mk_qs.qs_oldest ? mk_qs.qs_oldest->qc_deadline : INT64_MAX;

	if (mk_qs.qs_paused_until && mk_qs.qs_paused_until < next)
		next = mk_qs.qs_paused_until;
	if (next == INT64_MAX)
		return -1;
	return next <= now ? 0 : (int)(next - now);
}

static void *mk_qs_thread(void *arg)
{
	struct epoll_event ev[MK_QS_EVENTS];
	bool stop = false;
	int i, n;

	while (!stop) {
		n = epoll_wait(mk_qs.qs_epoll_fd, ev, MK_QS_EVENTS,
			       mk_qs_timeout((int64_t)mk_now_ms()));
		if (n < 0 && errno != EINTR) {
			mk_log(LOG_ERR, "query socket: epoll_wait: %s", strerror(errno));
			break;
		}
		for (i = 0; i < n; i++) {
			if (ev[i].data.ptr == &mk_qs.qs_svc.se_stop_fd)
				stop = true;
			else if (ev[i].data.ptr == &mk_qs.qs_svc.se_listen_fd)
				mk_qs_accept((int64_t)mk_now_ms());
			else
				mk_qs_client_event(ev[i].data.ptr, ev[i].events);
		}
		mk_qs_expire((int64_t)mk_now_ms());
		mk_qs_report((int64_t)mk_now_ms());
		mk_qs_free_closed();
	}
	while (mk_qs.qs_oldest)
		mk_qs_close(mk_qs.qs_oldest);
	mk_qs_free_closed();
	return NULL;
}

/* --- start and stop -------------------------------------------------------- */

static int mk_qs_epoll_add(int fd, void *tag)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = tag };

	return epoll_ctl(mk_qs.qs_epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static void mk_qs_close_epoll(void)
{
	if (mk_qs.qs_epoll_fd >= 0)
		close(mk_qs.qs_epoll_fd);
	mk_qs.qs_epoll_fd = -1;
}

/**
 * mk_query_server_start() - serve the query socket at @path on a thread
 * @path: where to bind; a missing last directory level is created (0755)
 *
 * Return: 0, -EALREADY, or a negative errno.
 */
int mk_query_server_start(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct mk_service *se = &mk_qs.qs_svc;
	int err;

	if (se->se_running)
		return -EALREADY;
	if (strlen(path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	strcpy(sun.sun_path, path);
	err = mk_service_open(se, (struct sockaddr *)&sun, sizeof(sun), MK_QS_BACKLOG);
	if (err)
		return err;
	mk_qs.qs_epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (mk_qs.qs_epoll_fd < 0)
		err = -errno;
	if (!err)
		err = mk_qs_epoll_add(se->se_stop_fd, &se->se_stop_fd);
	if (!err)
		err = mk_qs_epoll_add(se->se_listen_fd, &se->se_listen_fd);
	if (err) {
		mk_service_close(se);
		mk_qs_close_epoll();
		return err;
	}
	err = mk_service_run(se, mk_qs_thread);
	if (err)
		mk_qs_close_epoll();
	return err;
}

/**
 * mk_query_server_stop() - stop the query thread and remove the socket
 *
 * Clients still connected are closed without an answer.
 */
void mk_query_server_stop(void)
{
	if (!mk_qs.qs_svc.se_running)
		return;
	mk_service_stop(&mk_qs.qs_svc);
	mk_qs_close_epoll();
}
