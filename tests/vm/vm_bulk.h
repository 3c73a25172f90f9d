/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A connection relayed by the agent, with both ends in the test: the
 * client's TLS socket and the backend's plain one. And bulk data through
 * it both ways at once, each stream a pattern whose SHA-256 both ends
 * compute, so that one lost, doubled or flipped byte fails the test.
 * Used by agent_ktls_test and agent_rekey_test. Header only: each
 * tests/vm test is one program.
 */
#ifndef MAILKTLS_VM_BULK_H
#define MAILKTLS_VM_BULK_H

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/param.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "vm_agent.h"
#include "vm_records.h"

/* The streams' pattern: odd, so records never line up with its period. */
#define VM_PATTERN_LEN ((1u << 20) + 4093)

/* A relayed connection: client TLS socket, the backend's socket, prologue read. */
struct vm_relay {
	int r_cfd;
	int r_cport;
	int r_bfd;
	SSL *r_ssl;
	int r_alert;		/* the last alert the client read, MK_ALERT_NONE */
};

/**
 * vm_relay_resume() - connect through the agent, resuming @sess
 * @e:    the agent
 * @ctx:  the client's context
 * @sess: the session to resume, or NULL for a full handshake
 * @r:    filled in; vm_relay_close() it whatever the result
 *
 * The backend greets with MK_PROLOGUE, which the client reads.
 * Return: 0, or -1 when any step failed.
 */
static inline int vm_relay_resume(const struct vm_env *e, SSL_CTX *ctx, SSL_SESSION *sess,
				  struct vm_relay *r)
{
	char buf[sizeof(MK_PROLOGUE) - 1];

	r->r_bfd = -1;
	r->r_alert = MK_ALERT_NONE;
	r->r_cfd = vm_connect(e->e_port, &r->r_cport);
	r->r_ssl = SSL_new(ctx);
	if (r->r_cfd < 0 || !r->r_ssl || !SSL_set_fd(r->r_ssl, r->r_cfd))
		return -1;
	if (sess && !SSL_set_session(r->r_ssl, sess))
		return -1;
	SSL_set_msg_callback(r->r_ssl, mk_msg_cb);
	SSL_set_msg_callback_arg(r->r_ssl, &r->r_alert);
	if (SSL_connect(r->r_ssl) != 1)
		return -1;
	r->r_bfd = vm_backend_accept(e, VM_IO_TIMEOUT_MS);
	if (r->r_bfd < 0 || !vm_send_all(r->r_bfd, MK_PROLOGUE, sizeof(buf)))
		return -1;
	if (SSL_read(r->r_ssl, buf, sizeof(buf)) != (int)sizeof(buf) ||
	    memcmp(buf, MK_PROLOGUE, sizeof(buf)))
		return -1;
	return 0;
}

/* vm_relay_resume() with a full handshake. Return: 0 or -1. */
static inline int vm_relay_open(const struct vm_env *e, SSL_CTX *ctx, struct vm_relay *r)
{
	return vm_relay_resume(e, ctx, NULL, r);
}

static inline void vm_relay_close(struct vm_relay *r)
{
	SSL_free(r->r_ssl);
	r->r_ssl = NULL;
	if (r->r_cfd >= 0)
		close(r->r_cfd);
	if (r->r_bfd >= 0)
		close(r->r_bfd);
	r->r_cfd = r->r_bfd = -1;
}

/* One line client -> backend and one back, through the agent. Return: 0 or -1. */
static inline int vm_relay_ping(struct vm_relay *r)
{
	static const char ping[] = "a1 NOOP\r\n", pong[] = "a1 OK NOOP done\r\n";
	char buf[64];

	if (SSL_write(r->r_ssl, ping, sizeof(ping) - 1) != (int)sizeof(ping) - 1 ||
	    !vm_recv_all(r->r_bfd, buf, sizeof(ping) - 1) || memcmp(buf, ping, sizeof(ping) - 1) ||
	    !vm_send_all(r->r_bfd, pong, sizeof(pong) - 1))
		return -1;
	if (SSL_read(r->r_ssl, buf, sizeof(pong) - 1) != (int)sizeof(pong) - 1 ||
	    memcmp(buf, pong, sizeof(pong) - 1))
		return -1;
	return 0;
}

/* Byte i of stream @s is pattern[(start + i) % VM_PATTERN_LEN]. */
struct vm_stream {
	const uint8_t *st_pat;
	size_t st_pos;
};

static inline void vm_stream_fill(struct vm_stream *s, uint8_t *buf, size_t len)
{
	size_t n;

	while (len) {
		n = MIN(len, VM_PATTERN_LEN - s->st_pos);
		memcpy(buf, s->st_pat + s->st_pos, n);
		s->st_pos = (s->st_pos + n) % VM_PATTERN_LEN;
		buf += n;
		len -= n;
	}
}

/* One direction of the backend's half, run in a thread of its own. */
struct vm_bulk_side {
	int bs_fd;
	uint64_t bs_total;
	struct vm_stream bs_stream;	/* for the sender */
	uint8_t bs_md[32];
	uint64_t bs_done;
	int bs_err;
};

/* Thread: read bs_total bytes from the backend socket, hashing them. */
static inline void *vm_backend_sink(void *arg)
{
	struct vm_bulk_side *s = arg;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	uint8_t *buf = malloc(65536);
	ssize_t n;

	if (!md || !buf || !EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
		s->bs_err = ENOMEM;
		goto out;
	}
	while (s->bs_done < s->bs_total) {
		n = recv(s->bs_fd, buf, MIN(65536, s->bs_total - s->bs_done), 0);
		if (n <= 0) {
			s->bs_err = n < 0 ? errno : EPIPE;
			break;
		}
		EVP_DigestUpdate(md, buf, (size_t)n);
		s->bs_done += (uint64_t)n;
	}
	EVP_DigestFinal_ex(md, s->bs_md, NULL);
out:
	EVP_MD_CTX_free(md);
	free(buf);
	return NULL;
}

/* Thread: send bs_total bytes of the stream to the backend socket, hashing them. */
static inline void *vm_backend_source(void *arg)
{
	struct vm_bulk_side *s = arg;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	uint8_t *buf = malloc(65536);
	size_t len;

	if (!md || !buf || !EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
		s->bs_err = ENOMEM;
		goto out;
	}
	while (s->bs_done < s->bs_total) {
		len = MIN(65536, s->bs_total - s->bs_done);
		vm_stream_fill(&s->bs_stream, buf, len);
		EVP_DigestUpdate(md, buf, len);
		if (!vm_send_all(s->bs_fd, buf, len)) {
			s->bs_err = errno ?: EPIPE;
			break;
		}
		s->bs_done += len;
	}
	EVP_DigestFinal_ex(md, s->bs_md, NULL);
out:
	EVP_MD_CTX_free(md);
	free(buf);
	return NULL;
}

/*
 * The client's half, in one thread (an SSL object is not for two threads):
 * non-blocking, writing and reading as the socket allows.
 */
struct vm_bulk_client {
	uint64_t bc_total;
	struct vm_stream bc_stream;
	uint8_t bc_md_out[32], bc_md_in[32];
	uint64_t bc_sent, bc_rcvd;
	const char *bc_fail;		/* what went wrong, or NULL */
	/* called before each chunk is written (a test's KeyUpdates), or NULL */
	void (*bc_before_chunk)(SSL *ssl, struct vm_bulk_client *b);
	void *bc_arg;			/* for bc_before_chunk */
};

/* Write the chunk in progress (@wlen bytes of @wbuf, 0: make the next). */
static inline bool vm_bulk_client_write(SSL *ssl, struct vm_bulk_client *b, EVP_MD_CTX *out,
					uint8_t *wbuf, size_t size, size_t *wlen)
{
	size_t n;
	int err;

	if (!*wlen) {
		if (b->bc_before_chunk)
			b->bc_before_chunk(ssl, b);
		*wlen = MIN(size, b->bc_total - b->bc_sent);
		vm_stream_fill(&b->bc_stream, wbuf, *wlen);
		EVP_DigestUpdate(out, wbuf, *wlen);
	}
	if (SSL_write_ex(ssl, wbuf, *wlen, &n)) {
		b->bc_sent += n;
		*wlen = 0;
		return true;
	}
	err = SSL_get_error(ssl, 0);
	if (err != SSL_ERROR_WANT_WRITE && err != SSL_ERROR_WANT_READ)
		b->bc_fail = "SSL_write failed";
	return false;
}

/*
 * Read what there is. SSL_read may have to write too (the answer to a
 * KeyUpdate): WANT_WRITE is not a failure. Return: whether bytes came.
 */
static inline bool vm_bulk_client_read(SSL *ssl, struct vm_bulk_client *b, EVP_MD_CTX *in,
				       uint8_t *rbuf, size_t size)
{
	bool progress = false;
	size_t n;
	int err;

	while (b->bc_rcvd < b->bc_total) {
		if (!SSL_read_ex(ssl, rbuf, size, &n)) {
			err = SSL_get_error(ssl, 0);
			if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE)
				b->bc_fail = "SSL_read failed";
			break;
		}
		EVP_DigestUpdate(in, rbuf, n);
		b->bc_rcvd += n;
		progress = true;
	}
	return progress;
}

/* Send and receive bc_total bytes each way on @ssl (its socket @fd non-blocking). */
static inline void vm_bulk_client_run(SSL *ssl, int fd, struct vm_bulk_client *b)
{
	EVP_MD_CTX *out = EVP_MD_CTX_new(), *in = EVP_MD_CTX_new();
	uint8_t wbuf[MK_CHUNK], rbuf[MK_CHUNK];
	struct pollfd p = { .fd = fd };
	size_t wlen = 0;
	bool progress;

	if (!out || !in || !EVP_DigestInit_ex(out, EVP_sha256(), NULL) ||
	    !EVP_DigestInit_ex(in, EVP_sha256(), NULL)) {
		b->bc_fail = "no memory";
		goto out;
	}
	while (!b->bc_fail && (b->bc_sent < b->bc_total || b->bc_rcvd < b->bc_total)) {
		progress = false;
		if (b->bc_sent < b->bc_total)
			progress = vm_bulk_client_write(ssl, b, out, wbuf, sizeof(wbuf), &wlen);
		if (!b->bc_fail && vm_bulk_client_read(ssl, b, in, rbuf, sizeof(rbuf)))
			progress = true;
		if (b->bc_fail || progress)
			continue;
		p.events = POLLIN | (b->bc_sent < b->bc_total ? POLLOUT : 0);
		if (poll(&p, 1, VM_IO_TIMEOUT_MS) != 1)
			b->bc_fail = "no progress for 60 s";
	}
	EVP_DigestFinal_ex(out, b->bc_md_out, NULL);
	EVP_DigestFinal_ex(in, b->bc_md_in, NULL);
out:
	EVP_MD_CTX_free(out);
	EVP_MD_CTX_free(in);
}

#endif
