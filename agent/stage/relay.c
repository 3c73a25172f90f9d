// SPDX-License-Identifier: GPL-2.0
/*
 * Relaying plaintext between the client and the daemon.
 *
 * Two transports for the client side. With kernel TLS the kernel encrypts
 * and decrypts, and the bytes go by splice (relay_splice.c) without
 * entering user space. Without it (no kTLS on this kernel, `ktls = off`, or
 * a session the kernel could not take) OpenSSL does the records here, over
 * the same memory BIOs as the handshake.
 *
 * Either way, the first bytes from the daemon pass through the capability
 * filter (capfilter.c) in user space until it is done; then, with kTLS,
 * that direction switches to splice too.
 *
 * Each direction ends on its own (half-close): the client's close_notify
 * (or FIN) shuts the backend socket for writing once everything before it
 * was delivered; the daemon's EOF becomes our close_notify. The connection
 * ends when both directions have.
 */
#include <errno.h>
#include <string.h>

#include <openssl/buffer.h>
#include <openssl/err.h>

#include "capfilter.h"
#include "log.h"
#include "registry.h"
#include "relay_splice.h"
#include "relay_rekey.h"
#include "stage.h"
#include "tls_record.h"

#define MK_PLAIN_CHUNK 16384

static void relay_user_client_data(struct mk_conn *c);
static void relay_user_backend_data(struct mk_conn *c);
static void relay_user_sent(struct mk_conn *c);
static void relay_user_trim(struct mk_conn *c);
static void relay_client_eof(struct mk_conn *c);
static void relay_close_notify(struct mk_conn *c);
static void relay_complete(struct mk_conn *c, enum mk_op op, int res);
static void relay_free(struct mk_conn *c);

static const struct mk_conn_ops relay_ops = {
	.h_client_input = relay_user_client_data,
	.h_client_eof = relay_client_eof,
	.h_client_sent = relay_user_sent,
	.h_backend_input = relay_user_backend_data,
	.h_backend_sent = relay_user_sent,
	.h_complete = relay_complete,
	.h_idle = relay_user_trim,
	.h_free = relay_free,
};

/* A backend that closed before its greeting sends none: the client must
 * be read all the same, or its leaving is never seen. */
static bool relay_greeting_ok(const struct mk_conn *c)
{
	return c->c_cfg->lc_tls != MK_TLS_STARTTLS || !c->c_filter || c->c_b2c.d_eof ||
	       mk_capfilter_greeting_seen(c->c_filter);
}

static void relay_client_ended(struct mk_conn *c, const char *how)
{
	if (!c->c_end[0])
		snprintf(c->c_end, sizeof(c->c_end), "%s", how);
	c->c_c2b.d_eof = true;
}

/* Plaintext for the client: straight to the kTLS socket, or via OpenSSL. */
static int relay_to_client(struct mk_conn *c, const uint8_t *p, size_t len)
{
	int n;

	if (c->c_ktls)
		return mk_buf_append(&c->c_cout, p, len);
	while (len) {
		n = SSL_write(c->c_ssl, p, (int)(len > MK_PLAIN_CHUNK ? MK_PLAIN_CHUNK : len));
		if (n <= 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
	}
	n = mk_conn_drain_wbio(c);
	return n < 0 ? n : 0;
}

static void relay_check_done(struct mk_conn *c)
{
	if (c->c_c2b.d_done && c->c_b2c.d_done)
		mk_conn_end(c, "close");
}

/* Advance the client -> backend direction as far as it can go now. */
static void relay_c2b_next(struct mk_conn *c)
{
	struct mk_dir *d = &c->c_c2b;

	if (c->c_state != MK_CS_RELAY || d->d_done || mk_buf_used(&c->c_bout) ||
	    c->c_bsend_busy || !relay_greeting_ok(c))
		return;
	if (d->d_eof) {
		if (d->d_pipe || d->d_busy)
			return;
		shutdown(c->c_bfd, SHUT_WR);
		d->d_done = true;
		relay_check_done(c);
		return;
	}
	if (c->c_ktls) {
		mk_relay_splice_start(c);
	} else if (!d->d_started) {
		/* Records the client sent behind its Finished are already in
		 * OpenSSL's read BIO: use them before reading more. */
		d->d_started = true;
		relay_user_client_data(c);
	} else {
		mk_conn_recv_client(c);
	}
}

/* Advance the backend -> client direction as far as it can go now. */
static void relay_b2c_next(struct mk_conn *c)
{
	struct mk_dir *d = &c->c_b2c;

	if (c->c_state != MK_CS_RELAY || d->d_done || mk_buf_used(&c->c_cout) ||
	    c->c_csend_busy)
		return;
	/* no write to the client in flight: a pending KeyUpdate may go */
	if (c->c_ktls && mk_rekey_tx_resume(c))
		return;
	if (d->d_eof) {
		if (d->d_pipe || d->d_busy)
			return;
		relay_close_notify(c);
		return;
	}
	if (c->c_ktls && !c->c_filter)
		mk_relay_splice_start(c);
	else
		mk_conn_recv_backend(c);
}

/* The daemon is done sending: our close_notify, then shut the client
 * socket for writing (after the send, in user space: relay_user_sent). */
static void relay_close_notify(struct mk_conn *c)
{
	if (c->c_b2c.d_done)
		return;
	if (mk_conn_close_notify(c)) {
		mk_conn_send_client(c);
		return;
	}
	shutdown(c->c_fd, SHUT_WR);
	c->c_b2c.d_done = true;
	relay_check_done(c);
}

/*
 * Without kTLS: give back what OpenSSL holds beyond the session itself
 * while nothing is in it. A memory BIO keeps the largest buffer it ever held (the handshake's
 * flight, a burst of records): an empty one is swapped for a new one. The
 * record buffers go too, unless part of a record is in them.
 */
static void relay_user_trim(struct mk_conn *c)
{
	BUF_MEM *bm;
	BIO *b;

	if (c->c_ktls || !c->c_ssl)
		return;
	BIO_get_mem_ptr(c->c_rbio, &bm);
	if (bm->max && !BIO_ctrl_pending(c->c_rbio) && (b = BIO_new(BIO_s_mem()))) {
		BIO_set_mem_eof_return(b, -1);
		SSL_set0_rbio(c->c_ssl, b);
		c->c_rbio = b;
	}
	BIO_get_mem_ptr(c->c_wbio, &bm);
	if (bm->max && !BIO_ctrl_pending(c->c_wbio) && (b = BIO_new(BIO_s_mem()))) {
		SSL_set0_wbio(c->c_ssl, b);
		c->c_wbio = b;
	}
	SSL_free_buffers(c->c_ssl);
}

/**
 * mk_relay_start() - the backend is connected: send the PROXY header and
 * whatever is queued, start both directions
 * @c: the connection
 */
void mk_relay_start(struct mk_conn *c)
{
	c->c_ops = &relay_ops;
	c->c_filter = mk_capfilter_new(c->c_cfg->lc_protocol,
				       c->c_cfg->lc_tls == MK_TLS_STARTTLS);
	if (!c->c_filter) {
		mk_conn_end(c, "error:no_memory");
		return;
	}
	if (mk_buf_used(&c->c_bout))
		mk_conn_send_backend(c);
	relay_b2c_next(c);
	relay_c2b_next(c);
	relay_user_trim(c);	/* what the handshake left */
}

/*
 * Hand the client's ciphertext to OpenSSL, replacing a record too short for
 * its AEAD by the shortest that fails to authenticate, so that OpenSSL
 * answers bad_record_mac (tls_record.c). The scan starts at the records
 * the client sent behind its Finished, still unread in the BIO.
 */
static size_t relay_min_ciphertext(struct mk_conn *c)
{
	const SSL_CIPHER *cipher = SSL_get_current_cipher(c->c_ssl);

	return cipher ? mk_tls_min_ciphertext((uint16_t)SSL_version(c->c_ssl),
					      SSL_CIPHER_get_protocol_id(cipher)) : 0;
}

/* Before OpenSSL reads past its Finished: the BIO starts at a record. */
static void relay_scan_start(struct mk_conn *c)
{
	size_t min = relay_min_ciphertext(c);
	char *pending;
	long n;

	c->c_tls_rx.rx_primed = true;
	n = BIO_get_mem_data(c->c_rbio, &pending);
	if (min && n > 0)
		mk_tls_rx_scan(&c->c_tls_rx, min, (const uint8_t *)pending, (size_t)n);
}

static int relay_feed_openssl(struct mk_conn *c, const uint8_t *p, size_t len)
{
	static const uint8_t zeros[MK_TLS_MIN_CIPHERTEXT_MAX];
	size_t min = relay_min_ciphertext(c), pass;
	struct mk_tls_rx *rx = &c->c_tls_rx;
	uint8_t fake_len;

	if (!min)
		return BIO_write(c->c_rbio, p, (int)len) == (int)len ? 0 : -ENOBUFS;
	pass = mk_tls_rx_scan(rx, min, p, len);
	if (pass && BIO_write(c->c_rbio, p, (int)pass) != (int)pass)
		return -ENOBUFS;
	if (pass == len || !rx->rx_broken)
		return 0;
	fake_len = (uint8_t)min;
	if (BIO_write(c->c_rbio, &fake_len, 1) != 1 || BIO_write(c->c_rbio, zeros, (int)min) != (int)min)
		return -ENOBUFS;
	return 0;
}

/* Ciphertext from the client (no kTLS), in c->c_cin. */
static void relay_user_client_data(struct mk_conn *c)
{
	uint8_t *out;
	int n, err;

	if (!c->c_tls_rx.rx_primed)
		relay_scan_start(c);
	if (mk_buf_used(&c->c_cin)) {
		if (relay_feed_openssl(c, mk_buf_head(&c->c_cin), mk_buf_used(&c->c_cin))) {
			mk_conn_end(c, "error:no_memory");
			return;
		}
		mk_buf_reset(&c->c_cin);
	}
	for (;;) {
		/* Room for two records at once: an empty buffer is new each
		 * time, and growing it would copy the first. */
		out = mk_buf_reserve(&c->c_bout, mk_buf_used(&c->c_bout) ? MK_PLAIN_CHUNK :
					2 * MK_PLAIN_CHUNK);
		if (!out)
			break;	/* the backend is slow: resume when it drained */
		ERR_clear_error();
		n = SSL_read(c->c_ssl, out, MK_PLAIN_CHUNK);
		if (n <= 0) {
			err = SSL_get_error(c->c_ssl, n);
			if (err == SSL_ERROR_ZERO_RETURN)
				relay_client_ended(c, "close_notify");
			else if (err != SSL_ERROR_WANT_READ)
				mk_conn_end(c, "error:tls_record");
			break;
		}
		c->c_bout.b_len += (size_t)n;
		c->c_c2b.d_bytes += (uint64_t)n;
	}
	/* The last reserve found nothing to read: keep no empty buffer. */
	if (!mk_buf_used(&c->c_bout))
		mk_buf_free(&c->c_bout);
	/* OpenSSL may have something to say (e.g. an alert). */
	if (!c->c_csend_busy && mk_conn_drain_wbio(c) < 0) {
		mk_conn_end(c, "error:no_memory");
		return;
	}
	mk_conn_send_client(c);
	if (mk_buf_used(&c->c_bout))
		mk_conn_send_backend(c);
	else
		relay_c2b_next(c);
}

/* Plaintext (or EOF) from the backend, through the capability filter while
 * it is active: the bytes are in c->c_bin, EOF in c->c_b2c.d_eof. */
static void relay_user_backend_data(struct mk_conn *c)
{
	size_t used = mk_buf_used(&c->c_bin);
	struct mk_buf plain;
	int ret = 0;

	if (used && c->c_filter) {
		mk_buf_init(&plain, c->c_bin.b_max * 2);
		ret = mk_capfilter_feed(c->c_filter, mk_buf_head(&c->c_bin), used, &plain);
		if (ret >= 0 && mk_buf_used(&plain))
			ret = relay_to_client(c, mk_buf_head(&plain), mk_buf_used(&plain)) ?: ret;
		mk_buf_free(&plain);
		if (ret == 1) {
			mk_capfilter_free(c->c_filter);
			c->c_filter = NULL;
		}
	} else if (used) {
		ret = relay_to_client(c, mk_buf_head(&c->c_bin), used);
	}
	if (ret < 0) {
		mk_conn_end(c, "error:relay:%s", strerror(-ret));
		return;
	}
	c->c_b2c.d_bytes += used;
	mk_buf_reset(&c->c_bin);
	if (mk_buf_used(&c->c_cout))
		mk_conn_send_client(c);
	else
		relay_b2c_next(c);
	relay_c2b_next(c);	/* the greeting may have arrived */
}

/* A send to the client or the backend finished. */
static void relay_user_sent(struct mk_conn *c)
{
	if (c->c_b2c.d_eof && !c->c_ktls && !mk_buf_used(&c->c_cout) &&
	    (SSL_get_shutdown(c->c_ssl) & SSL_SENT_SHUTDOWN) && !c->c_b2c.d_done) {
		shutdown(c->c_fd, SHUT_WR);
		c->c_b2c.d_done = true;
		relay_check_done(c);
		return;
	}
	relay_b2c_next(c);
	relay_c2b_next(c);
}

/* A poll or splice completed (kTLS); a direction that reached its end
 * is finished here. */
static void relay_complete(struct mk_conn *c, enum mk_op op, int res)
{
	switch (mk_relay_splice_complete(c, op, res)) {
	case MK_SPLICE_END_C2B:
		relay_c2b_next(c);
		break;
	case MK_SPLICE_END_B2C:
		relay_b2c_next(c);
		break;
	case MK_SPLICE_GOING:
		break;
	}
}

/* The connection is freed: the kept traffic secrets, the filter, and the
 * registry entry backend.c made, which lives as long as the relay. */
static void relay_free(struct mk_conn *c)
{
	mk_rekey_free(c);
	mk_capfilter_free(c->c_filter);
	c->c_filter = NULL;
	mk_registry_remove(c->c_registry_id);
	c->c_registry_id = 0;
}

/* The client closed its side of TCP. */
static void relay_client_eof(struct mk_conn *c)
{
	relay_client_ended(c, "eof");
	relay_c2b_next(c);
}
