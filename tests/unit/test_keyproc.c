// SPDX-License-Identifier: GPL-2.0
/*
 * The key process's protocol, against the real mk_keyproc_main() in a
 * forked child: signatures that verify with the certificate's public key,
 * unknown keys, a reload checked before it is committed or given up, and a
 * malformed request ending it. Keys are made at test time.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "keyproc.h"
#include "kselftest_harness.h"

#define HDR offsetof(struct mk_keyproc_req, kr_data)

struct kp {
	char dir[64];
	char conf[96];
	EVP_PKEY *key[2];	/* ec.key, ec2.key */
	uint8_t id[2][MK_KEYPROC_ID_LEN];
	int fd;
	pid_t pid;
	uint32_t seq;
};

static void write_conf(struct kp *k, const char *keyfile)
{
	FILE *f = fopen(k->conf, "w");

	fprintf(f, "[listener a]\nlisten = 127.0.0.1:1\nprotocol = imap\ntls = implicit\n"
		"backend = 127.0.0.1:2\ncertificate = %s/c.pem\nprivate_key = %s/%s\n",
		k->dir, k->dir, keyfile);
	fclose(f);
}

static void write_key(struct kp *k, int i, const char *name)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", k->dir, name);
	k->key[i] = EVP_EC_gen("P-256");
	f = fopen(path, "w");
	PEM_write_PrivateKey(f, k->key[i], NULL, NULL, 0, NULL, NULL);
	fclose(f);
	mk_keyproc_key_id(k->key[i], k->id[i]);
}

/* Start the key process on @keyfile. Return: the status of its first answer. */
static int kp_start(struct kp *k, const char *keyfile, char *text, size_t len)
{
	struct mk_keyproc_ans ans = { 0 };
	int sv[2];

	strcpy(k->dir, "/tmp/mk-keyproc-XXXXXX");
	if (!mkdtemp(k->dir))
		return -errno;
	snprintf(k->conf, sizeof(k->conf), "%s/k.conf", k->dir);
	write_key(k, 0, "ec.key");
	write_key(k, 1, "ec2.key");
	write_conf(k, keyfile);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv))
		return -errno;
	k->pid = fork();
	if (k->pid == 0) {
		dup2(sv[1], MK_KEYPROC_FD);
		_exit(mk_keyproc_main(k->conf, 0));
	}
	close(sv[1]);
	k->fd = sv[0];
	if (recv(k->fd, &ans, sizeof(ans), 0) < (ssize_t)offsetof(struct mk_keyproc_ans, ka_data))
		return -EPIPE;
	snprintf(text, len, "%.*s", (int)ans.ka_len, (char *)ans.ka_data);
	return ans.ka_status;
}

static int kp_call(struct kp *k, uint16_t op, int key, const void *data, size_t len,
		   struct mk_keyproc_ans *ans)
{
	struct mk_keyproc_req req = { .kr_seq = ++k->seq, .kr_op = op };

	memcpy(req.kr_id, k->id[key], MK_KEYPROC_ID_LEN);
	if (len)
		memcpy(req.kr_data, data, len);
	req.kr_len = (uint16_t)len;
	if (send(k->fd, &req, HDR + len, 0) < 0 ||
	    recv(k->fd, ans, sizeof(*ans), 0) < (ssize_t)offsetof(struct mk_keyproc_ans, ka_data))
		return -EPIPE;
	return ans->ka_seq == k->seq ? ans->ka_status : -EPROTO;
}

static int have(struct kp *k, int key)
{
	struct mk_keyproc_ans ans;

	return kp_call(k, MK_KEYPROC_HAVE, key, NULL, 0, &ans);
}

/* Return: 1 when the key process's ECDSA signature verifies with @key. */
static int signs(struct kp *k, int key)
{
	unsigned char dgst[32];
	struct mk_keyproc_ans ans;
	EVP_PKEY_CTX *pc;
	int ok;

	RAND_bytes(dgst, sizeof(dgst));
	if (kp_call(k, MK_KEYPROC_ECDSA, key, dgst, sizeof(dgst), &ans))
		return 0;
	pc = EVP_PKEY_CTX_new(k->key[key], NULL);
	ok = EVP_PKEY_verify_init(pc) == 1 &&
	     EVP_PKEY_verify(pc, ans.ka_data, ans.ka_len, dgst, sizeof(dgst)) == 1;
	EVP_PKEY_CTX_free(pc);
	return ok;
}

static void kp_end(struct kp *k)
{
	char cmd[96];

	close(k->fd);
	waitpid(k->pid, NULL, 0);
	EVP_PKEY_free(k->key[0]);
	EVP_PKEY_free(k->key[1]);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", k->dir);
	if (system(cmd))
		return;
}

TEST(signs_with_the_key_it_holds)
{
	struct kp k = { 0 };
	char text[256];

	ASSERT_EQ(0, kp_start(&k, "ec.key", text, sizeof(text)));
	EXPECT_STREQ("1 key", text);
	EXPECT_EQ(0, have(&k, 0));
	EXPECT_EQ(-ENOKEY, have(&k, 1));
	EXPECT_EQ(1, signs(&k, 0));
	EXPECT_EQ(0, signs(&k, 1));
	kp_end(&k);
}

TEST(reload_checked_then_committed_or_given_up)
{
	struct mk_keyproc_ans ans;
	struct kp k = { 0 };
	char text[256];

	ASSERT_EQ(0, kp_start(&k, "ec.key", text, sizeof(text)));
	write_conf(&k, "ec2.key");
	ASSERT_EQ(0, kp_call(&k, MK_KEYPROC_RELOAD, 0, NULL, 0, &ans));
	/* The reload's keys answer HAVE; the running ones still sign. */
	EXPECT_EQ(0, have(&k, 1));
	EXPECT_EQ(-ENOKEY, have(&k, 0));
	EXPECT_EQ(1, signs(&k, 0));
	EXPECT_EQ(0, signs(&k, 1));
	ASSERT_EQ(0, kp_call(&k, MK_KEYPROC_ABORT, 0, NULL, 0, &ans));
	EXPECT_EQ(0, have(&k, 0));
	EXPECT_EQ(-ENOKEY, have(&k, 1));
	/* Committed: the new key signs, the previous one too. */
	ASSERT_EQ(0, kp_call(&k, MK_KEYPROC_RELOAD, 0, NULL, 0, &ans));
	ASSERT_EQ(0, kp_call(&k, MK_KEYPROC_COMMIT, 0, NULL, 0, &ans));
	EXPECT_EQ(0, have(&k, 1));
	EXPECT_EQ(1, signs(&k, 1));
	EXPECT_EQ(1, signs(&k, 0));
	kp_end(&k);
}

TEST(reload_that_fails_keeps_the_keys)
{
	struct mk_keyproc_ans ans;
	struct kp k = { 0 };
	char text[256];

	ASSERT_EQ(0, kp_start(&k, "ec.key", text, sizeof(text)));
	write_conf(&k, "missing.key");
	EXPECT_EQ(-EINVAL, kp_call(&k, MK_KEYPROC_RELOAD, 0, NULL, 0, &ans));
	EXPECT_NE(NULL, memmem(ans.ka_data, ans.ka_len, "missing.key", 11));
	EXPECT_EQ(1, signs(&k, 0));
	kp_end(&k);
}

TEST(unloadable_key_at_start)
{
	struct kp k = { 0 };
	char text[256];
	int st;

	EXPECT_EQ(-EINVAL, kp_start(&k, "missing.key", text, sizeof(text)));
	EXPECT_NE(NULL, strstr(text, "k.conf:"));
	EXPECT_NE(NULL, strstr(text, "missing.key"));
	waitpid(k.pid, &st, 0);
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 1);
	close(k.fd);
}

TEST(malformed_request_ends_it)
{
	struct mk_keyproc_req req = { .kr_op = MK_KEYPROC_ECDSA, .kr_len = 40 };
	struct mk_keyproc_ans ans;
	struct kp k = { 0 };
	char text[256];

	ASSERT_EQ(0, kp_start(&k, "ec.key", text, sizeof(text)));
	/* kr_len says 40 bytes, the message carries 8. */
	ASSERT_EQ((ssize_t)(HDR + 8), send(k.fd, &req, HDR + 8, 0));
	EXPECT_EQ(0, recv(k.fd, &ans, sizeof(ans), 0));
	kp_end(&k);
}

TEST_HARNESS_MAIN
