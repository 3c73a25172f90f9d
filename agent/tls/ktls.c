// SPDX-License-Identifier: GPL-2.0
/*
 * Kernel TLS: probe, key installation, and the control records that cannot
 * travel by splice.
 *
 * Failures explain themselves the way ktls-utils' tlshd does: which
 * setsockopt failed, the errno text, and the likely cause, because an
 * operator reading "Invalid argument" in a log cannot tell a missing module
 * from an old kernel.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include "ktls.h"

#ifndef SOL_TLS
#define SOL_TLS 282
#endif

/* The kernel-internal ENOTSUPP leaks to user space from some TLS paths. */
#define MK_KERNEL_ENOTSUPP 524

#define MK_ULP_OPT 0	/* pseudo option number for TCP_ULP in the hint table */
#define MK_ANY_OPT -1

struct mk_ktls_hint {
	int kh_opt;		/* MK_ULP_OPT, TLS_TX, TLS_RX or MK_ANY_OPT */
	int kh_errno;
	const char *kh_text;
};

static const struct mk_ktls_hint mk_ktls_hints[] = {
	{ MK_ULP_OPT, ENOENT, "kernel has no TLS ULP (CONFIG_TLS off or module tls not loaded)" },
	{ MK_ULP_OPT, EEXIST, "an upper layer protocol is already set on this socket" },
	{ MK_ULP_OPT, ENOTCONN, "the socket is not an established TCP connection" },
	{ MK_ULP_OPT, ENOPROTOOPT, "kernel does not know TCP_ULP (older than 4.13)" },
	{ MK_ULP_OPT, EOPNOTSUPP, "this socket cannot take the TLS ULP (not plain TCP?)" },
	{ TLS_RX, EINVAL, "cipher or TLS version not supported for receive by this kernel "
			  "(TLS 1.3 receive needs 5.1, ChaCha20-Poly1305 5.11)" },
	{ TLS_TX, EINVAL, "cipher or TLS version not supported for transmit by this kernel "
			  "(TLS 1.3 needs 5.1, ChaCha20-Poly1305 5.11)" },
	{ MK_ANY_OPT, ENOPROTOOPT, "SOL_TLS not available: TCP_ULP \"tls\" is not set on "
				   "this socket" },
	{ MK_ANY_OPT, EBUSY, "keys for this direction are already set on this socket" },
	{ MK_ANY_OPT, EEXIST, "keys for this direction are already set on this socket" },
	{ MK_ANY_OPT, ENOENT, "the kernel crypto algorithm for this cipher is missing "
			      "(modules gcm, aesni-intel or chacha20poly1305 not loaded)" },
	{ MK_ANY_OPT, ENOMEM, "kernel out of memory" },
	{ MK_ANY_OPT, MK_KERNEL_ENOTSUPP, "not supported by this kernel's TLS for this "
					  "direction and version" },
	{ MK_ANY_OPT, EOPNOTSUPP, "not supported by this kernel's TLS" },
};

static const char *mk_ktls_hint(int opt, int e)
{
	size_t i;

	for (i = 0; i < sizeof(mk_ktls_hints) / sizeof(mk_ktls_hints[0]); i++) {
		const struct mk_ktls_hint *h = &mk_ktls_hints[i];

		if (h->kh_errno != e)
			continue;
		if (h->kh_opt == opt || (h->kh_opt == MK_ANY_OPT && opt != MK_ULP_OPT))
			return h->kh_text;
	}
	return NULL;
}

static const char *mk_errno_text(int e)
{
	const char *s = e == MK_KERNEL_ENOTSUPP ? "Operation not supported (ENOTSUPP)" :
						  strerrordesc_np(e);

	return s ? s : "Unknown error";
}

/* Format "what: errno text (likely cause)" into @err. */
static void mk_ktls_explain(char *err, size_t errlen, const char *what, int opt, int e)
{
	const char *hint = mk_ktls_hint(opt, e);

	if (!err || !errlen)
		return;
	snprintf(err, errlen, "%s: %s%s%s%s", what, mk_errno_text(e), hint ? " (" : "",
		 hint ? hint : "", hint ? ")" : "");
}

static void mk_put_be64(uint8_t *p, uint64_t v)
{
	int i;

	for (i = 7; i >= 0; i--) {
		p[i] = v & 0xff;
		v >>= 8;
	}
}

/* The kernel's cipher_type for an IANA suite at a version; 0 if kTLS has none. */
static int mk_kernel_cipher(uint16_t id, uint16_t version)
{
	bool v12 = version == TLS1_2_VERSION, v13 = version == TLS1_3_VERSION;

	switch (id) {
	case 0xC02B: case 0xC02F:
		return v12 ? TLS_CIPHER_AES_GCM_128 : 0;
	case 0xC02C: case 0xC030:
		return v12 ? TLS_CIPHER_AES_GCM_256 : 0;
	case 0xCCA8: case 0xCCA9:
		return v12 ? TLS_CIPHER_CHACHA20_POLY1305 : 0;
	case 0x1301:
		return v13 ? TLS_CIPHER_AES_GCM_128 : 0;
	case 0x1302:
		return v13 ? TLS_CIPHER_AES_GCM_256 : 0;
	case 0x1303:
		return v13 ? TLS_CIPHER_CHACHA20_POLY1305 : 0;
	}
	return 0;
}

/*
 * GCM: the kernel's nonce is salt(4) || iv(8). TLS 1.2 sends the 8 bytes as
 * the explicit nonce and increments them per record, so they start at the
 * sequence number as OpenSSL's do; TLS 1.3 XORs the sequence number into
 * salt || iv, the 12-byte static IV.
 */
static void mk_fill_gcm(const struct mk_tls_dir_keys *k, uint8_t *salt, uint8_t *iv,
			uint8_t *key, uint8_t *rec_seq)
{
	memcpy(salt, k->dk_iv, TLS_CIPHER_AES_GCM_128_SALT_SIZE);
	if (k->dk_version == TLS1_2_VERSION)
		mk_put_be64(iv, k->dk_seq);
	else
		memcpy(iv, k->dk_iv + TLS_CIPHER_AES_GCM_128_SALT_SIZE,
		       TLS_CIPHER_AES_GCM_128_IV_SIZE);
	memcpy(key, k->dk_key, k->dk_key_len);
	mk_put_be64(rec_seq, k->dk_seq);
}

/**
 * mk_ktls_crypto_info() - fill the kernel's crypto_info for one direction
 * @k:  keys, cipher, version and next record sequence number
 * @ci: out; the caller wipes it after use
 *
 * Return: the number of bytes of @ci to pass to setsockopt; -ENOTSUP for a
 * cipher or version kTLS does not take; -EINVAL for inconsistent lengths.
 */
int mk_ktls_crypto_info(const struct mk_tls_dir_keys *k, union mk_ktls_crypto_info *ci)
{
	int type = mk_kernel_cipher(k->dk_cipher, k->dk_version);
	size_t key_len, iv_len;

	memset(ci, 0, sizeof(*ci));
	if (!type)
		return -ENOTSUP;
	key_len = type == TLS_CIPHER_AES_GCM_128 ? 16 : 32;
	iv_len = type != TLS_CIPHER_CHACHA20_POLY1305 && k->dk_version == TLS1_2_VERSION ? 4 : 12;
	if (k->dk_key_len != key_len || k->dk_iv_len != iv_len)
		return -EINVAL;
	ci->ci_info.version = k->dk_version == TLS1_2_VERSION ? TLS_1_2_VERSION : TLS_1_3_VERSION;
	ci->ci_info.cipher_type = type;
	switch (type) {
	case TLS_CIPHER_AES_GCM_128:
		mk_fill_gcm(k, ci->ci_gcm128.salt, ci->ci_gcm128.iv, ci->ci_gcm128.key,
			    ci->ci_gcm128.rec_seq);
		return sizeof(ci->ci_gcm128);
	case TLS_CIPHER_AES_GCM_256:
		mk_fill_gcm(k, ci->ci_gcm256.salt, ci->ci_gcm256.iv, ci->ci_gcm256.key,
			    ci->ci_gcm256.rec_seq);
		return sizeof(ci->ci_gcm256);
	default:
		/* RFC 7905: nonce = iv XOR seq for both versions; no salt. */
		memcpy(ci->ci_chacha.iv, k->dk_iv, sizeof(ci->ci_chacha.iv));
		memcpy(ci->ci_chacha.key, k->dk_key, sizeof(ci->ci_chacha.key));
		mk_put_be64(ci->ci_chacha.rec_seq, k->dk_seq);
		return sizeof(ci->ci_chacha);
	}
}

static const char *mk_ktls_optname(int opt)
{
	return opt == TLS_TX ? "setsockopt(SOL_TLS, TLS_TX)" : "setsockopt(SOL_TLS, TLS_RX)";
}

/* Can kTLS take @k? Explains in @err if not. */
static int mk_ktls_check(int opt, const struct mk_tls_dir_keys *k, char *err, size_t errlen)
{
	union mk_ktls_crypto_info ci;
	int len;

	len = mk_ktls_crypto_info(k, &ci);
	OPENSSL_cleanse(&ci, sizeof(ci));
	if (len >= 0)
		return 0;
	if (err && errlen)
		snprintf(err, errlen, "%s: cipher suite 0x%04x, version 0x%04x: %s",
			 mk_ktls_optname(opt), k->dk_cipher, k->dk_version, len == -ENOTSUP ?
			 "kernel TLS does not take this cipher suite" :
			 "key or IV length does not match the cipher suite");
	return len;
}

/* Install one direction's keys; -errno and an explanation on failure. */
static int mk_ktls_set_dir(int fd, int opt, const struct mk_tls_dir_keys *k, char *err,
			   size_t errlen)
{
	union mk_ktls_crypto_info ci;
	int len, ret = 0;

	len = mk_ktls_crypto_info(k, &ci);
	if (len < 0)
		ret = len;
	else if (setsockopt(fd, SOL_TLS, opt, &ci, len)) {
		ret = -errno;
		mk_ktls_explain(err, errlen, mk_ktls_optname(opt), opt, errno);
	}
	OPENSSL_cleanse(&ci, sizeof(ci));
	return ret;
}

/**
 * mk_ktls_install() - switch @fd to kernel TLS in both directions
 * @fd:     an established TCP socket with nothing unread by user space
 * @tx:     keys and next sequence number for sending
 * @rx:     keys and next sequence number for receiving
 * @err:    on failure, a readable reason naming the setsockopt that failed
 * @errlen: size of @err
 *
 * Return: 0; negative errno from the failing setsockopt (-ENOTSUP or -EINVAL
 * before any setsockopt for keys kTLS cannot take). On failure after TCP_ULP
 * succeeded the socket is unusable and must be closed.
 */
int mk_ktls_install(int fd, const struct mk_tls_dir_keys *tx, const struct mk_tls_dir_keys *rx,
		    char *err, size_t errlen)
{
	int ret;

	/* Refuse unusable keys before the socket is changed for good. */
	ret = mk_ktls_check(TLS_TX, tx, err, errlen);
	if (!ret)
		ret = mk_ktls_check(TLS_RX, rx, err, errlen);
	if (ret)
		return ret;
	if (setsockopt(fd, SOL_TCP, TCP_ULP, "tls", sizeof("tls"))) {
		ret = -errno;
		mk_ktls_explain(err, errlen, "setsockopt(SOL_TCP, TCP_ULP, \"tls\")", MK_ULP_OPT,
				errno);
		return ret;
	}
	ret = mk_ktls_set_dir(fd, TLS_TX, tx, err, errlen);
	if (!ret)
		ret = mk_ktls_set_dir(fd, TLS_RX, rx, err, errlen);
	return ret;
}

/* A connected loopback TCP pair; the listener is closed before returning. */
static int mk_loopback_pair(int *cfd, int *afd)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t slen = sizeof(sin);
	int lfd, ret = 0;

	*cfd = *afd = -1;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		return -errno;
	if (bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) || listen(lfd, 1) ||
	    getsockname(lfd, (struct sockaddr *)&sin, &slen)) {
		ret = -errno;
		goto out_listener;
	}
	*cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (*cfd < 0 || connect(*cfd, (struct sockaddr *)&sin, sizeof(sin))) {
		ret = -errno;
		goto out_listener;
	}
	/* The handshake completed into the backlog: accept does not block. */
	*afd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (*afd < 0)
		ret = -errno;
out_listener:
	close(lfd);
	if (ret && *cfd >= 0) {
		close(*cfd);
		*cfd = -1;
	}
	return ret;
}

/**
 * mk_ktls_probe() - can this kernel do TLS_TX and TLS_RX?
 * @why:    on failure, a sentence saying why not
 * @whylen: size of @why
 *
 * Installs dummy TLS 1.3 AES-128-GCM keys both ways on a loopback TCP
 * connection it makes and closes, the same calls mk_ktls_install() makes.
 *
 * Return: true if kTLS works.
 */
bool mk_ktls_probe(char *why, size_t whylen)
{
	struct mk_tls_dir_keys k = {
		.dk_version = TLS1_3_VERSION,
		.dk_cipher = 0x1301,
		.dk_key_len = 16,
		.dk_iv_len = 12,
	};
	int cfd, afd, ret;

	ret = mk_loopback_pair(&cfd, &afd);
	if (ret) {
		if (why && whylen)
			snprintf(why, whylen, "cannot make a loopback TCP connection to probe: %s",
				 mk_errno_text(-ret));
		return false;
	}
	ret = mk_ktls_install(cfd, &k, &k, why, whylen);
	close(cfd);
	close(afd);
	return ret == 0;
}

/* Send @len bytes as one record of content type @type. */
static int mk_ktls_send_record(int fd, uint8_t type, const uint8_t *p, size_t len)
{
	union {
		char cu_buf[CMSG_SPACE(sizeof(uint8_t))];
		struct cmsghdr cu_align;
	} cu;
	struct iovec iov = { .iov_base = (void *)p, .iov_len = len };
	struct msghdr msg = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = cu.cu_buf,
		.msg_controllen = sizeof(cu.cu_buf),
	};
	struct cmsghdr *cmsg;
	ssize_t n;
	int tries;

	memset(&cu, 0, sizeof(cu));
	cmsg = CMSG_FIRSTHDR(&msg);
	cmsg->cmsg_level = SOL_TLS;
	cmsg->cmsg_type = TLS_SET_RECORD_TYPE;
	cmsg->cmsg_len = CMSG_LEN(sizeof(uint8_t));
	*CMSG_DATA(cmsg) = type;

	for (tries = 0; tries < 8; tries++) {
		n = sendmsg(fd, &msg, MSG_NOSIGNAL);
		if (n >= 0 || errno != EINTR)
			break;
	}
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}

/**
 * mk_ktls_send_alert() - send an alert record on a kTLS socket
 * @fd:          the kTLS socket
 * @level:       1 warning, 2 fatal
 * @description: alert description, e.g. 0 close_notify
 *
 * Return: 0, or negative errno (-EAGAIN on a full non-blocking socket).
 */
int mk_ktls_send_alert(int fd, uint8_t level, uint8_t description)
{
	uint8_t alert[2] = { level, description };

	return mk_ktls_send_record(fd, MK_TLS_CT_ALERT, alert, sizeof(alert));
}

/**
 * mk_ktls_send_key_update() - send KeyUpdate(update_not_requested) as a
 * handshake record under the current TX keys
 * @fd: the kTLS socket
 *
 * RFC 8446 §4.6.3: msg_type 24, length 1, request_update 0.
 *
 * Return: 0, or negative errno (-EAGAIN on a full non-blocking socket).
 */
int mk_ktls_send_key_update(int fd)
{
	static const uint8_t ku[5] = { 24, 0, 0, 1, 0 };

	return mk_ktls_send_record(fd, MK_TLS_CT_HANDSHAKE, ku, sizeof(ku));
}

/**
 * mk_ktls_rekey() - give one direction of a kTLS socket its next keys
 * @fd: the kTLS socket
 * @tx: true for TLS_TX, false for TLS_RX
 * @k:  the keys and record sequence number
 *
 * Return: 0, or negative errno from setsockopt.
 */
int mk_ktls_rekey(int fd, bool tx, const struct mk_tls_dir_keys *k)
{
	return mk_ktls_set_dir(fd, tx ? TLS_TX : TLS_RX, k, NULL, 0);
}

/**
 * mk_ktls_rx_resume() - let the kernel decrypt again after a record that
 * starts a KeyUpdate message but does not hold all of it
 * @fd: the kTLS socket
 *
 * Return: 0, or negative errno.
 */
int mk_ktls_rx_resume(int fd)
{
	union mk_ktls_crypto_info ci;
	socklen_t len = sizeof(ci.ci_info);
	int ret = 0;

	/* the kernel takes exactly the cipher's struct: its type first */
	if (getsockopt(fd, SOL_TLS, TLS_RX, &ci, &len))
		return -errno;
	switch (ci.ci_info.cipher_type) {
	case TLS_CIPHER_AES_GCM_128:
		len = sizeof(ci.ci_gcm128);
		break;
	case TLS_CIPHER_AES_GCM_256:
		len = sizeof(ci.ci_gcm256);
		break;
	case TLS_CIPHER_CHACHA20_POLY1305:
		len = sizeof(ci.ci_chacha);
		break;
	default:
		return -ENOTSUP;
	}
	if (getsockopt(fd, SOL_TLS, TLS_RX, &ci, &len) ||
	    setsockopt(fd, SOL_TLS, TLS_RX, &ci, len))
		ret = -errno;
	OPENSSL_cleanse(&ci, sizeof(ci));
	return ret;
}

static bool mk_rekey_ok;

/**
 * mk_ktls_probe_rekey() - can this kernel change the keys of a kTLS socket?
 *
 * Return: true if a second TLS_TX on a loopback connection was taken.
 */
bool mk_ktls_probe_rekey(void)
{
	struct mk_tls_dir_keys k = {
		.dk_version = TLS1_3_VERSION,
		.dk_cipher = 0x1301,
		.dk_key_len = 16,
		.dk_iv_len = 12,
	};
	int cfd, afd;
	bool ok = false;

	if (mk_loopback_pair(&cfd, &afd))
		goto out;
	if (!setsockopt(cfd, SOL_TCP, TCP_ULP, "tls", sizeof("tls")) &&
	    !mk_ktls_set_dir(cfd, TLS_TX, &k, NULL, 0)) {
		k.dk_key[0] = 1;	/* the next generation: other keys */
		ok = !mk_ktls_set_dir(cfd, TLS_TX, &k, NULL, 0);
	}
	close(cfd);
	close(afd);
out:
	__atomic_store_n(&mk_rekey_ok, ok, __ATOMIC_RELAXED);
	return ok;
}

/**
 * mk_ktls_can_rekey() - what mk_ktls_probe_rekey() found
 *
 * Return: true if this kernel can rekey kTLS sockets.
 */
bool mk_ktls_can_rekey(void)
{
	return __atomic_load_n(&mk_rekey_ok, __ATOMIC_RELAXED);
}

/**
 * mk_ktls_rx_version() - the TLS version of @fd's receive direction
 * @fd: a kTLS socket
 *
 * Asks for the bare tls_crypto_info, so the kernel copies no key.
 *
 * Return: TLS1_2_VERSION or TLS1_3_VERSION, or negative errno.
 */
int mk_ktls_rx_version(int fd)
{
	struct tls_crypto_info ci;
	socklen_t len = sizeof(ci);

	if (getsockopt(fd, SOL_TLS, TLS_RX, &ci, &len))
		return -errno;
	if (len != sizeof(ci))
		return -EPROTO;
	return ci.version == TLS_1_3_VERSION ? TLS1_3_VERSION : TLS1_2_VERSION;
}

/**
 * mk_ktls_recv_record() - read one record with its content type
 * @fd:   the kTLS socket
 * @buf:  payload out
 * @len:  size of @buf (a record's payload is at most 16384 bytes)
 * @type: out, the record's content type (0 at end of stream)
 *
 * The kernel returns one record type per call; a record larger than @len
 * is returned over several calls.
 *
 * Return: bytes of payload read (0 at end of stream, *@type 0; or for an
 * empty record, *@type set), or negative errno:
 * -EBADMSG for a record that fails to decrypt, -EMSGSIZE for an oversized
 * record, -EINVAL for a malformed one, -EAGAIN on an empty non-blocking
 * socket, -EPROTO if @fd returned data without a record type (not kTLS).
 */
ssize_t mk_ktls_recv_record(int fd, uint8_t *buf, size_t len, uint8_t *type)
{
	union {
		char cu_buf[CMSG_SPACE(sizeof(uint8_t))];
		struct cmsghdr cu_align;
	} cu;
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cmsg;
	ssize_t n;
	int tries;

	*type = 0;
	for (tries = 0; tries < 8; tries++) {
		memset(&cu, 0, sizeof(cu));
		msg.msg_control = cu.cu_buf;
		msg.msg_controllen = sizeof(cu.cu_buf);
		n = recvmsg(fd, &msg, 0);
		if (n >= 0 || errno != EINTR)
			break;
	}
	if (n < 0)
		return -errno;
	/* A record of length 0 (an empty alert) comes with its type too. */
	for (cmsg = CMSG_FIRSTHDR(&msg); cmsg; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
		if (cmsg->cmsg_level == SOL_TLS && cmsg->cmsg_type == TLS_GET_RECORD_TYPE) {
			*type = *CMSG_DATA(cmsg);
			return n;
		}
	}
	return n == 0 ? 0 : -EPROTO;
}
