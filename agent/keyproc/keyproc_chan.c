// SPDX-License-Identifier: GPL-2.0
/*
 * A worker's signing channel: a signature is a request the worker sends on
 * its own socket and an answer it handles later, like any other I/O of its
 * ring; the worker never waits for a key process.
 *
 * Why OpenSSL's async jobs (SSL_MODE_ASYNC): libssl asks for the signature
 * from deep inside SSL_do_handshake() (the key's RSA_METHOD or
 * EC_KEY_METHOD, keyproc_pkey.c), and neither OpenSSL 3.0 nor 3.5 offers a
 * way to return from there and be called again with the signature
 * (SSL_set_retry_verify() exists for certificate verification only, and a
 * provider's signature has no retry either). An async job is OpenSSL's
 * documented way, the one crypto-offload engines use: the handshake runs
 * on a job's own stack, the key method sends the request and calls
 * ASYNC_pause_job(), SSL_do_handshake() returns SSL_ERROR_WANT_ASYNC, and
 * calling it again once the answer is in resumes the job where it paused.
 * The job's ASYNC_WAIT_CTX file descriptor is not used: it would be one
 * descriptor per pending signature; the worker polls one socket per
 * channel instead and finds the handshake by the answer's sequence number.
 *
 * A pending signature (struct kp_wait) belongs to the paused job, which
 * frees it once resumed; it is linked in its channel until it is answered,
 * failed or cancelled, and whoever finishes it unlinks it. Its request and
 * answer buffers are on the job's stack, which stays while it is paused.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/async.h>

#include "clock.h"
#include "keyproc_chan.h"

struct kp_wait {
	struct kp_wait *w_next;
	void *w_waiter;			/* the connection, for the resume call */
	struct mk_keyproc_req *w_req;	/* on the paused job's stack */
	struct mk_keyproc_ans *w_ans;
	uint64_t w_deadline;
	int w_status;
	uint8_t w_sends;		/* 1 sent, 2 sent again to a successor */
	bool w_sent;			/* on the socket in use now */
	bool w_done;
};

struct mk_keyproc_chan {
	int ch_fd;			/* -1 while the key process restarts */
	atomic_int ch_next;		/* from the main thread: a new fd, or DOWN */
	bool ch_down;			/* no key process: fail at once */
	unsigned int ch_proc;
	uint32_t ch_seq;
	struct kp_wait *ch_waits;
	mk_keyproc_resume_fn ch_resume;
	void *ch_arg;
	struct mk_keyproc_ans ch_buf;
};

static __thread struct mk_keyproc_chan *tl_chan;
static __thread void *tl_waiter;

#if OPENSSL_VERSION_NUMBER >= 0x30200000L
/*
 * The whole handshake runs on the job's stack, and OpenSSL gives a job
 * 32 KiB, sized before the post-quantum groups (X25519MLKEM768, 3.5's
 * default) whose ML-KEM state takes kilobytes. The agent's group list does
 * not offer them today; the job's stack must not be what stops it. From
 * 3.2 the size can be chosen: 256 KiB, of which only the pages touched
 * take memory (malloc maps a block this size on its own).
 */
#define MK_ASYNC_STACK (256 * 1024)

static void *async_stack_alloc(size_t *num)
{
	if (*num < MK_ASYNC_STACK)
		*num = MK_ASYNC_STACK;
	return malloc(*num);
}

static void async_stack_free(void *addr)
{
	free(addr);
}
#endif

void mk_keyproc_async_init(void)
{
#if OPENSSL_VERSION_NUMBER >= 0x30200000L
	ASYNC_set_mem_functions(async_stack_alloc, async_stack_free);
#endif
}

struct mk_keyproc_chan *mk_keyproc_chan_new(unsigned int proc)
{
	struct mk_keyproc_chan *ch = calloc(1, sizeof(*ch));

	if (!ch)
		return NULL;
	ch->ch_fd = -1;
	atomic_init(&ch->ch_next, -1);
	ch->ch_proc = proc;
	return ch;
}

unsigned int mk_keyproc_chan_proc(const struct mk_keyproc_chan *ch)
{
	return ch->ch_proc;
}

void mk_keyproc_chan_publish(struct mk_keyproc_chan *ch, int fd)
{
	int old = atomic_exchange(&ch->ch_next, fd);

	if (old >= 0)
		close(old);
}

void mk_keyproc_chan_free(struct mk_keyproc_chan *ch)
{
	if (!ch)
		return;
	mk_keyproc_chan_publish(ch, -1);
	if (ch->ch_fd >= 0)
		close(ch->ch_fd);
	free(ch);
}

void mk_keyproc_chan_bind(struct mk_keyproc_chan *ch, mk_keyproc_resume_fn resume, void *arg)
{
	if (ch) {
		ch->ch_resume = resume;
		ch->ch_arg = arg;
	}
	tl_chan = ch;
}

int mk_keyproc_chan_fd(const struct mk_keyproc_chan *ch)
{
	return ch->ch_fd;
}

void mk_keyproc_set_waiter(void *waiter)
{
	tl_waiter = waiter;
}

static void unlink_wait(struct mk_keyproc_chan *ch, struct kp_wait *w)
{
	struct kp_wait **pp;

	for (pp = &ch->ch_waits; *pp; pp = &(*pp)->w_next)
		if (*pp == w) {
			*pp = w->w_next;
			return;
		}
}

/* @w is answered (status 0, answer copied) or failed: its handshake runs
 * again, which resumes the job. */
static void finish(struct mk_keyproc_chan *ch, struct kp_wait *w, int status)
{
	unlink_wait(ch, w);
	w->w_status = status;
	w->w_done = true;
	ch->ch_resume(w->w_waiter, ch->ch_arg);
}

static int send_wait(struct mk_keyproc_chan *ch, struct kp_wait *w)
{
	if (send(ch->ch_fd, w->w_req, offsetof(struct mk_keyproc_req, kr_data) + w->w_req->kr_len,
		 MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		return -errno;
	w->w_sent = true;
	w->w_sends++;
	w->w_deadline = mk_now_ms() + MK_KEYPROC_TIMEOUT_MS;
	return 0;
}

/* The key process is gone: nothing it was asked will be answered. */
static void chan_lost(struct mk_keyproc_chan *ch)
{
	struct kp_wait *w;

	close(ch->ch_fd);
	ch->ch_fd = -1;
	for (w = ch->ch_waits; w; w = w->w_next)
		w->w_sent = false;
}

bool mk_keyproc_chan_can_wait(unsigned int *proc)
{
	*proc = tl_chan ? tl_chan->ch_proc : 0;
	return tl_chan && tl_waiter && ASYNC_get_current_job();
}

int mk_keyproc_chan_sign(struct mk_keyproc_req *req, struct mk_keyproc_ans *ans)
{
	struct mk_keyproc_chan *ch = tl_chan;
	struct kp_wait *w;
	int ret;

	if (ch->ch_down)
		return -ENOTCONN;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->w_req = req;
	w->w_ans = ans;
	w->w_waiter = tl_waiter;
	req->kr_seq = ++ch->ch_seq;
	w->w_deadline = mk_now_ms() + MK_KEYPROC_TIMEOUT_MS;
	if (ch->ch_fd >= 0) {
		ret = send_wait(ch, w);
		/* Its key process died and the EOF is not read yet: the
		 * successor gets it, like what it owed. */
		if (ret == -EPIPE || ret == -ECONNRESET)
			chan_lost(ch);
		else if (ret)
			goto out_free;
	}
	/* Not sent while the key process restarts: its successor gets it. */
	w->w_next = ch->ch_waits;
	ch->ch_waits = w;
	while (!w->w_done) {
		if (!ASYNC_pause_job()) {
			unlink_wait(ch, w);
			ret = -EIO;
			goto out_free;
		}
	}
	ret = w->w_status;
out_free:
	free(w);
	return ret;
}

void mk_keyproc_cancel(void *waiter)
{
	struct mk_keyproc_chan *ch = tl_chan;
	struct kp_wait *w;

	for (w = ch ? ch->ch_waits : NULL; w; w = w->w_next)
		if (w->w_waiter == waiter) {
			unlink_wait(ch, w);
			w->w_status = -ECANCELED;
			w->w_done = true;
			return;
		}
}

static struct kp_wait *find_seq(struct mk_keyproc_chan *ch, uint32_t seq)
{
	struct kp_wait *w;

	for (w = ch->ch_waits; w; w = w->w_next)
		if (w->w_sent && w->w_req->kr_seq == seq)
			return w;
	return NULL;
}

int mk_keyproc_chan_input(struct mk_keyproc_chan *ch)
{
	const size_t hdr = offsetof(struct mk_keyproc_ans, ka_data);
	struct kp_wait *w;
	ssize_t n;

	while (ch->ch_fd >= 0) {
		n = recv(ch->ch_fd, &ch->ch_buf, sizeof(ch->ch_buf), MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n < (ssize_t)hdr || ch->ch_buf.ka_len > sizeof(ch->ch_buf.ka_data) ||
		    (size_t)n != hdr + ch->ch_buf.ka_len) {
			chan_lost(ch);
			return -EPIPE;
		}
		w = find_seq(ch, ch->ch_buf.ka_seq);
		if (!w)
			continue;	/* for a signature that failed meanwhile */
		memcpy(w->w_ans, &ch->ch_buf, (size_t)n);
		finish(ch, w, 0);
	}
	return -EPIPE;
}

/* The first signature that the socket in use does not have. */
static struct kp_wait *first_unsent(struct mk_keyproc_chan *ch)
{
	struct kp_wait *w;

	for (w = ch->ch_waits; w; w = w->w_next)
		if (!w->w_sent)
			return w;
	return NULL;
}

void mk_keyproc_chan_refresh(struct mk_keyproc_chan *ch)
{
	int fd = atomic_exchange(&ch->ch_next, -1);
	struct kp_wait *w;

	if (fd == -1)
		return;
	if (ch->ch_fd >= 0)
		chan_lost(ch);	/* its key process died before we saw the EOF */
	ch->ch_down = fd == MK_KEYPROC_CHAN_DOWN;
	if (!ch->ch_down)
		ch->ch_fd = fd;
	/* What the dead one owed goes to its successor, once. Each step sends
	 * or finishes one; a handshake run by finish() sends its own at once. */
	while ((w = first_unsent(ch))) {
		if (ch->ch_down || w->w_sends >= 2 || send_wait(ch, w))
			finish(ch, w, ch->ch_down ? -ENOTCONN : -EPIPE);
	}
}

void mk_keyproc_chan_expire(struct mk_keyproc_chan *ch, uint64_t now)
{
	struct kp_wait *w;

	for (;;) {
		for (w = ch->ch_waits; w && w->w_deadline > now; w = w->w_next)
			;
		if (!w)
			return;
		finish(ch, w, -ETIMEDOUT);
	}
}
