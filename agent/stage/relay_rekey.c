// SPDX-License-Identifier: GPL-2.0
/*
 * TLS 1.3 KeyUpdate on a kernel TLS connection (RFC 8446 §4.6.3), on
 * kernels that can change a socket's keys (Linux 6.14 and later; probed at
 * start, mk_ktls_can_rekey()).
 *
 * Such a connection keeps its two current application traffic secrets
 * (struct mk_tls13_traffic, 2 x 48 bytes at most) from the handover to its
 * end; they are replaced by the next ones (wiped) at each update and wiped
 * when the connection is freed. Nothing else of TLS is kept.
 *
 * Receive: the kernel hands over the KeyUpdate record with its type and
 * then decrypts nothing more until TLS_RX is set again (recvmsg and splice
 * fail with EKEYEXPIRED). The client -> backend direction is one chain of
 * operations (relay_splice.c), and the KeyUpdate is read between two of
 * them; the next client secret's key and IV are set as TLS_RX (sequence 0)
 * before that chain queues anything again, so no record of the client's is
 * ever read under the wrong key.
 *
 * Send (update_requested): our KeyUpdate must be the last record under the
 * old key and every record after it must be under the new one. Records to
 * the client are written by the backend -> client chain: a splice from its
 * pipe to the client socket (or, while the capability filter works, a send
 * from c_cout), which io_uring may be running at any moment while it is
 * queued. So the answer is sent, and TLS_TX set with the next server
 * secret, only while no write to the client is in flight: the pipe of that
 * direction is empty (d_in_pipe == 0: no splice out or POLLOUT wait queued)
 * and no send is busy. Otherwise it is left pending (rk_tx_pending) and
 * that direction does it at the next point where its write completed and
 * before it writes again (mk_rekey_tx_resume() from relay_splice.c and
 * relay.c). The worker runs both steps back to back on one thread, nothing
 * of ours can come between them; every kernel send is whole records under
 * the socket lock, so records before ours stay under the old key, and what
 * the backend sends meanwhile waits in its socket or in the pipe: nothing
 * is lost or reordered. Several requests before the answer get one answer
 * (RFC 8446 §4.6.3 allows it).
 *
 * A client that sends more than MK_REKEY_MAX_PER_S KeyUpdates within a
 * second (haproxy's tune.ssl.keyupdate-rate-limit default) is closed: each
 * costs two key derivations and a cipher setup in the kernel.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "clock.h"
#include "ktls.h"
#include "log.h"
#include "metrics.h"
#include "relay_rekey.h"
#include "stage.h"
#include "tls_keys.h"

#define MK_REKEY_MAX_PER_S 100
#define MK_REKEY_SEND_WAIT_MS 1000	/* the socket buffer is full: wait that long at most */

struct mk_rekey {
	struct mk_tls13_traffic rk_tt;
	uint64_t rk_window_ms;		/* start of the current second */
	uint16_t rk_window_count;	/* KeyUpdates in it */
	bool rk_tx_pending;		/* the client asked; our update not sent yet */
};

/**
 * mk_rekey_attach() - keep @ssl's traffic secrets for later KeyUpdates
 * @c:          a TLS 1.3 connection about to go to kernel TLS
 * @ssl:        its SSL, handshake complete, secrets captured
 * @rx_updates: KeyUpdates OpenSSL already read from the client (records
 *              behind its Finished): the client secret is stepped as often
 * @tx_updated: OpenSSL sent its KeyUpdate already: the server secret is
 *              stepped once
 * @tx_pending: one of them asked for our update, which OpenSSL did not send
 * @rx:         the receive keys to install: replaced by those of the
 *              stepped client secret when @rx_updates is not 0
 * @tx:         the send keys to install: replaced when @tx_updated
 *
 * Does nothing (returns 0) when the kernel cannot rekey: no secret is kept
 * that could not be used.
 *
 * Return: 0, or negative errno (-ENOMEM; from the key derivation).
 */
int mk_rekey_attach(struct mk_conn *c, SSL *ssl, unsigned int rx_updates, bool tx_updated,
		    bool tx_pending, struct mk_tls_dir_keys *rx, struct mk_tls_dir_keys *tx)
{
	struct mk_rekey *rk;
	unsigned int i;
	int err;

	if (!mk_ktls_can_rekey() || SSL_version(ssl) != TLS1_3_VERSION)
		return rx_updates || tx_updated || tx_pending ? -ENOTSUP : 0;
	rk = OPENSSL_zalloc(sizeof(*rk));
	if (!rk)
		return -ENOMEM;
	err = mk_tls13_traffic_take(ssl, &rk->rk_tt);
	for (i = 0; !err && i < rx_updates; i++)
		err = mk_tls13_traffic_update(&rk->rk_tt, true, rx);
	if (!err && tx_updated)
		err = mk_tls13_traffic_update(&rk->rk_tt, false, tx);
	if (err) {
		OPENSSL_clear_free(rk, sizeof(*rk));
		return err;
	}
	rk->rk_tx_pending = tx_pending;
	c->c_rekey = rk;
	return 0;
}

/**
 * mk_rekey_free() - wipe and release a connection's kept secrets
 * @c: the connection (may have none)
 */
void mk_rekey_free(struct mk_conn *c)
{
	OPENSSL_clear_free(c->c_rekey, sizeof(*c->c_rekey));
	c->c_rekey = NULL;
}

/* Is a write to the client possibly running now? */
static bool rekey_client_write_busy(const struct mk_conn *c)
{
	return c->c_b2c.d_in_pipe || c->c_csend_busy;
}

/* The kernel's socket buffer may be full right after a large write. */
static int rekey_send_update(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	int err, tries;

	for (tries = 0; tries < 4; tries++) {
		err = mk_ktls_send_key_update(fd);
		if (err != -EAGAIN)
			return err;
		if (poll(&pfd, 1, MK_REKEY_SEND_WAIT_MS / 4) < 0 && errno != EINTR)
			return -errno;
	}
	return -EAGAIN;
}

/* Our KeyUpdate under the old key, then the new key for what follows. */
static int rekey_tx(struct mk_conn *c)
{
	struct mk_rekey *rk = c->c_rekey;
	struct mk_tls13_traffic next = rk->rk_tt;
	struct mk_tls_dir_keys k;
	int err;

	err = mk_tls13_traffic_update(&next, false, &k);
	if (!err)
		err = rekey_send_update(c->c_fd);
	if (!err)
		err = mk_ktls_rekey(c->c_fd, true, &k);
	mk_tls_dir_keys_wipe(&k);
	if (!err) {
		rk->rk_tt = next;
		rk->rk_tx_pending = false;
		mk_metrics_add(c->c_listener->l_index, MK_M_KEYUPDATE_SENT, 1);
	}
	mk_tls13_traffic_wipe(&next);
	return err;
}

/**
 * mk_rekey_tx_resume() - send the KeyUpdate a client asked for, if one is
 * pending and no write to the client is in flight
 * @c: a kTLS connection in relay
 *
 * Call where the backend -> client direction has just finished a write and
 * has not queued the next one.
 *
 * Return: 0; a negative errno after which the connection was ended.
 */
int mk_rekey_tx_resume(struct mk_conn *c)
{
	int err;

	if (!c->c_rekey || !c->c_rekey->rk_tx_pending || rekey_client_write_busy(c))
		return 0;
	err = rekey_tx(c);
	if (err) {
		mk_conn_end(c, "error:key_update_send:%s", strerror(-err));
		return err;
	}
	return 0;
}

/* RFC 8446 §4.6.3 does not bound the rate; an honest client needs few. */
static bool rekey_rate_ok(struct mk_rekey *rk)
{
	uint64_t now = mk_now_ms();

	if (now - rk->rk_window_ms >= 1000) {
		rk->rk_window_ms = now;
		rk->rk_window_count = 0;
	}
	return ++rk->rk_window_count <= MK_REKEY_MAX_PER_S;
}

/**
 * mk_rekey_received() - the client's KeyUpdate was read from the kernel
 * @c:         a kTLS connection in relay
 * @requested: its request_update was update_requested
 *
 * Sets TLS_RX to the keys of the client's next secret, and answers a
 * request now or as soon as no write to the client is in flight.
 *
 * Return: MK_REKEY_OK to go on reading; MK_REKEY_REFUSED when this
 * connection cannot rekey (kernel before 6.14: today's internal_error and
 * close); MK_REKEY_RATE for a client over the rate limit (logged); or
 * MK_REKEY_FAILED when the keys could not be set; MK_REKEY_ENDED when
 * sending our update failed and the connection was ended.
 */
enum mk_rekey_res mk_rekey_received(struct mk_conn *c, bool requested)
{
	struct mk_rekey *rk = c->c_rekey;
	struct mk_tls13_traffic next;
	struct mk_tls_dir_keys k;
	char addr[80];
	int err;

	mk_metrics_add(c->c_listener->l_index, MK_M_KEYUPDATE_RECEIVED, 1);
	if (!rk) {
		mk_metrics_add(c->c_listener->l_index, MK_M_KEYUPDATE_REFUSED, 1);
		return MK_REKEY_REFUSED;
	}
	if (!rekey_rate_ok(rk)) {
		mk_metrics_add(c->c_listener->l_index, MK_M_KEYUPDATE_REFUSED, 1);
		mk_log(LOG_WARNING, "key_update listener=%s client=%s: more than %d KeyUpdates "
		       "in a second, closing", c->c_cfg->lc_name,
		       mk_sockaddr_str(&c->c_client, addr, sizeof(addr)), MK_REKEY_MAX_PER_S);
		return MK_REKEY_RATE;
	}
	next = rk->rk_tt;
	err = mk_tls13_traffic_update(&next, true, &k);
	if (!err)
		err = mk_ktls_rekey(c->c_fd, false, &k);
	mk_tls_dir_keys_wipe(&k);
	if (!err)
		rk->rk_tt = next;
	mk_tls13_traffic_wipe(&next);
	if (err)
		return MK_REKEY_FAILED;
	if (requested)
		rk->rk_tx_pending = true;
	return mk_rekey_tx_resume(c) ? MK_REKEY_ENDED : MK_REKEY_OK;
}
