// SPDX-License-Identifier: GPL-2.0
/*
 * The key process (mailktlsd -K): it holds every listener's private keys
 * and does the private-key operations the agent asks for, nothing else.
 *
 * It has no network: every descriptor but stdio and its socket is closed,
 * capabilities are dropped (but reading files), it cannot gain privileges,
 * dump core or be traced by a process of the same user. It answers on its
 * control socket (the agent's main thread) and on the signing channel of
 * each worker it serves, one request at a time, each in the order of its
 * socket; several key processes sign in parallel (key_processes). A reload loads the keys
 * of the configuration file anew, for the agent to match its new
 * certificates against; once the agent commits it, the previous set stays
 * as well, so handshakes still on the previous certificates can finish;
 * older sets go. A reload the agent gives up leaves the keys as they were.
 */
#include <errno.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "config.h"
#include "keyproc.h"
#include "tls_policy.h"

#define MK_KEYSET_MAX (MK_MAX_LISTENERS * MK_MAX_CERTS)

/* The signing contexts of a key, made on first use and reused: setting one
 * up (the provider's algorithm fetched, the padding set) costs as much as
 * an ECDSA signature. */
enum { CTX_ECDSA, CTX_RSA_PKCS1, CTX_RSA_RAW, CTX_N };

/* Every certificate/key pair of every listener, by key id. */
struct keyset {
	size_t ks_n;
	uint8_t ks_id[MK_KEYSET_MAX][MK_KEYPROC_ID_LEN];
	EVP_PKEY *ks_key[MK_KEYSET_MAX];
	EVP_PKEY_CTX *ks_ctx[MK_KEYSET_MAX][CTX_N];
};

static void keyset_free(struct keyset *ks)
{
	size_t i;
	int j;

	if (!ks)
		return;
	for (i = 0; i < ks->ks_n; i++) {
		for (j = 0; j < CTX_N; j++)
			EVP_PKEY_CTX_free(ks->ks_ctx[i][j]);
		EVP_PKEY_free(ks->ks_key[i]);	/* clears the private numbers */
	}
	free(ks);
}

/* Return: the index of the key called @id in @ks, or -1. */
static int keyset_find(const struct keyset *ks, const uint8_t *id)
{
	size_t i;

	for (i = 0; ks && i < ks->ks_n; i++)
		if (!memcmp(ks->ks_id[i], id, MK_KEYPROC_ID_LEN))
			return (int)i;
	return -1;
}

/* Load every key of @path. Return: the set, or NULL with @err set. */
static struct keyset *keyset_load(const char *path, char *err, size_t errlen)
{
	struct mk_config *cfg;
	struct keyset *ks;
	size_t i;
	int j;

	if (mk_config_load(path, &cfg, err, errlen))
		return NULL;
	ks = calloc(1, sizeof(*ks));
	if (!ks) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto out_cfg;
	}
	for (i = 0; i < cfg->cf_nlisteners; i++) {
		const struct mk_listener_cfg *lc = &cfg->cf_listeners[i];

		for (j = 0; j < lc->lc_ncerts; j++) {
			EVP_PKEY *k = mk_tls_read_key(cfg, &lc->lc_certs[j], err, errlen);

			if (!k)
				goto out_free;
			ks->ks_key[ks->ks_n] = k;
			if (mk_keyproc_key_id(k, ks->ks_id[ks->ks_n++])) {
				snprintf(err, errlen, "%s: out of memory", path);
				goto out_free;
			}
		}
	}
	mk_config_free(cfg);
	return ks;

out_free:
	keyset_free(ks);
	ks = NULL;
out_cfg:
	mk_config_free(cfg);
	return ks;
}

/*
 * The context for one kind of operation with key @i: ECDSA over a digest;
 * PKCS#1 type 1 padding done here (a DigestInfo from RSA_sign()); or the
 * raw RSA private operation on a block the agent padded itself (PSS).
 */
static EVP_PKEY_CTX *sign_ctx(struct keyset *ks, int i, int kind)
{
	EVP_PKEY_CTX **pc = &ks->ks_ctx[i][kind];
	int want = kind == CTX_ECDSA ? EVP_PKEY_EC : EVP_PKEY_RSA;

	if (*pc)
		return *pc;
	if (EVP_PKEY_get_base_id(ks->ks_key[i]) != want)
		return NULL;
	*pc = EVP_PKEY_CTX_new_from_pkey(NULL, ks->ks_key[i], NULL);
	if (*pc && EVP_PKEY_sign_init(*pc) == 1 &&
	    (kind == CTX_ECDSA ||
	     EVP_PKEY_CTX_set_rsa_padding(*pc, kind == CTX_RSA_RAW ? RSA_NO_PADDING :
							      RSA_PKCS1_PADDING) == 1))
		return *pc;
	EVP_PKEY_CTX_free(*pc);
	*pc = NULL;
	return NULL;
}

static int sign(struct keyset *ks, int i, const struct mk_keyproc_req *req,
		struct mk_keyproc_ans *ans)
{
	size_t len = sizeof(ans->ka_data);
	EVP_PKEY_CTX *pc;
	int kind;

	if (req->kr_op == MK_KEYPROC_ECDSA)
		kind = CTX_ECDSA;
	else if (req->kr_padding == RSA_PKCS1_PADDING)
		kind = CTX_RSA_PKCS1;
	else if (req->kr_padding == RSA_NO_PADDING)
		kind = CTX_RSA_RAW;
	else
		return -EINVAL;
	pc = sign_ctx(ks, i, kind);
	if (!pc || EVP_PKEY_sign(pc, ans->ka_data, &len, req->kr_data, req->kr_len) != 1)
		return -EINVAL;
	ans->ka_len = (uint16_t)len;
	return 0;
}

static void ans_text(struct mk_keyproc_ans *ans, int status, const char *text)
{
	size_t n = strlen(text);

	if (n > sizeof(ans->ka_data))
		n = sizeof(ans->ka_data);
	ans->ka_status = status;
	ans->ka_len = (uint16_t)n;
	memcpy(ans->ka_data, text, n);
}

/*
 * The key sets: the one in force, the one before it (handshakes still on
 * the previous certificates), and one loaded for a reload the agent has
 * not committed yet: it names the keys the new certificates must match.
 */
struct keyring {
	struct keyset *kg_cur;
	struct keyset *kg_prev;
	struct keyset *kg_pending;
};

static void load_pending(const char *path, struct keyring *kg, struct mk_keyproc_ans *ans)
{
	char err[MK_ERR_MAX], msg[64];
	struct keyset *ks = keyset_load(path, err, sizeof(err));

	if (!ks) {
		ans_text(ans, -EINVAL, err);
		return;
	}
	keyset_free(kg->kg_pending);
	kg->kg_pending = ks;
	snprintf(msg, sizeof(msg), "%zu key%s", ks->ks_n, ks->ks_n == 1 ? "" : "s");
	ans_text(ans, 0, msg);
}

static void commit(struct keyring *kg)
{
	if (!kg->kg_pending)
		return;
	keyset_free(kg->kg_prev);
	kg->kg_prev = kg->kg_cur;
	kg->kg_cur = kg->kg_pending;
	kg->kg_pending = NULL;
}

/* A HAVE asks about the keys a reload is checking, if one is under way. */
static struct keyset *lookup(struct keyring *kg, const struct mk_keyproc_req *req, int *i)
{
	struct keyset *order[3] = { kg->kg_cur, kg->kg_prev, NULL };
	int k;

	if (req->kr_op == MK_KEYPROC_HAVE) {
		order[0] = kg->kg_pending ? kg->kg_pending : kg->kg_cur;
		order[1] = NULL;
	}
	for (k = 0; order[k]; k++) {
		*i = keyset_find(order[k], req->kr_id);
		if (*i >= 0)
			return order[k];
	}
	return NULL;
}

static void answer(const char *path, struct keyring *kg, const struct mk_keyproc_req *req,
		   struct mk_keyproc_ans *ans)
{
	struct keyset *ks;
	int i;

	memset(ans, 0, sizeof(*ans));
	ans->ka_seq = req->kr_seq;
	switch (req->kr_op) {
	case MK_KEYPROC_RELOAD:
		load_pending(path, kg, ans);
		return;
	case MK_KEYPROC_COMMIT:
		commit(kg);
		return;
	case MK_KEYPROC_ABORT:
		keyset_free(kg->kg_pending);
		kg->kg_pending = NULL;
		return;
	}
	ks = lookup(kg, req, &i);
	if (!ks) {
		ans_text(ans, -ENOKEY, "no such key");
		return;
	}
	switch (req->kr_op) {
	case MK_KEYPROC_HAVE:
		ans->ka_status = 0;
		break;
	case MK_KEYPROC_RSA_PRIVATE:
	case MK_KEYPROC_ECDSA:
		ans->ka_status = sign(ks, i, req, ans);
		break;
	default:
		ans->ka_status = -EOPNOTSUPP;
	}
	ERR_clear_error();
}

/*
 * Nothing the key process does needs another descriptor or a capability,
 * but reading key files: started as root, it keeps CAP_DAC_READ_SEARCH so
 * that keys which load today (0600, owned by another user) still load.
 */
static void confine(unsigned int nchan)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2] = { { 0 } };
	const uint32_t keep = 1u << CAP_DAC_READ_SEARCH;	/* in data[0] */
	struct rlimit none = { 0, 0 };

	close_range(MK_KEYPROC_FD + 1 + nchan, ~0U, 0);
	/* It ends when the agent closes the socket, after the agent's own
	 * stop: systemd's SIGTERM to the whole unit, or ^C to the terminal's
	 * process group, would otherwise end it first. */
	signal(SIGHUP, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	if (syscall(SYS_capget, &hdr, data))
		memset(data, 0, sizeof(data));
	data[0].effective &= keep;
	data[0].permitted &= keep;
	data[0].inheritable = 0;
	memset(&data[1], 0, sizeof(data[1]));
	syscall(SYS_capset, &hdr, data);
	setrlimit(RLIMIT_CORE, &none);
}

/* One request on @fd answered. Return: 0, or -1 when the socket ended or
 * someone else than the agent speaks on it. */
static int serve_one(int fd, const char *path, struct keyring *kg)
{
	struct mk_keyproc_req req;
	struct mk_keyproc_ans ans;
	ssize_t n;

	do
		n = recv(fd, &req, sizeof(req), MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	if (n <= 0)
		return -1;
	if ((size_t)n < offsetof(struct mk_keyproc_req, kr_data) ||
	    req.kr_len > sizeof(req.kr_data) ||
	    (size_t)n < offsetof(struct mk_keyproc_req, kr_data) + req.kr_len)
		return -1;
	answer(path, kg, &req, &ans);
	if (send(fd, &ans, offsetof(struct mk_keyproc_ans, ka_data) + ans.ka_len,
		 MSG_NOSIGNAL) < 0)
		return -1;
	return 0;
}

int mk_keyproc_main(const char *path, unsigned int nchan)
{
	struct pollfd pfd[1 + MK_KEYPROC_CHANNELS_MAX];
	struct keyring kg = { NULL, NULL, NULL };
	struct mk_keyproc_ans ans;
	unsigned int i, n;

	if (nchan > MK_KEYPROC_CHANNELS_MAX)
		return 2;
	confine(nchan);
	n = 1 + nchan;
	for (i = 0; i < n; i++)
		pfd[i] = (struct pollfd){ .fd = MK_KEYPROC_FD + (int)i, .events = POLLIN };
	/* The first answer says whether the keys loaded, as a reload does. */
	memset(&ans, 0, sizeof(ans));
	load_pending(path, &kg, &ans);
	commit(&kg);
	if (send(MK_KEYPROC_FD, &ans, offsetof(struct mk_keyproc_ans, ka_data) + ans.ka_len,
		 MSG_NOSIGNAL) < 0 || ans.ka_status)
		goto out;
	for (;;) {
		if (poll(pfd, n, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		/* The control socket ends with the agent; a channel that ends
		 * or misbehaves is dropped alone. */
		if (pfd[0].revents && serve_one(pfd[0].fd, path, &kg))
			break;
		for (i = 1; i < n; i++)
			if (pfd[i].revents && serve_one(pfd[i].fd, path, &kg)) {
				close(pfd[i].fd);
				pfd[i].fd = -1;
			}
	}
out:
	keyset_free(kg.kg_cur);
	keyset_free(kg.kg_prev);
	keyset_free(kg.kg_pending);
	return ans.ka_status ? 1 : 0;
}
