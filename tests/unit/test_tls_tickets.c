// SPDX-License-Identifier: GPL-2.0
/*
 * The ticket_keys file: haproxy's format (base64 lines of 48 or 80 bytes)
 * and its rotation rule (the last three keys kept, the second-to-last
 * encrypts), and every refusal with the file's line.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "config.h"
#include "tls_tickets.h"
#include "kselftest_harness.h"

FIXTURE(tk)
{
	char dir[64];
	char path[128];
	struct mk_config cfg;
	struct mk_listener_cfg lc;
	char err[MK_ERR_MAX];
};

FIXTURE_SETUP(tk)
{
	strcpy(self->dir, "/tmp/mk-tickets-XXXXXX");
	ASSERT_NE(NULL, mkdtemp(self->dir));
	snprintf(self->path, sizeof(self->path), "%s/keys", self->dir);
	memset(&self->cfg, 0, sizeof(self->cfg));
	memset(&self->lc, 0, sizeof(self->lc));
	strcpy(self->cfg.cf_path, "m.conf");
	strcpy(self->lc.lc_ticket_keys.pc_path, self->path);
	self->lc.lc_ticket_keys.pc_line = 12;
}

FIXTURE_TEARDOWN(tk)
{
	unlink(self->path);
	rmdir(self->dir);
}

/* Key @i of @len bytes: every byte is i, so the name says which key it is. */
static void key_line(char *out, int i, int len)
{
	unsigned char raw[80];

	memset(raw, i, sizeof(raw));
	EVP_EncodeBlock((unsigned char *)out, raw, len);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	fputs(text, f);
	fclose(f);
	chmod(path, mode);
}

/* @n keys of @len bytes, numbered from 1, one a line, CRLF when asked. */
static void write_keys(const char *path, int n, int len, const char *eol)
{
	char text[4096] = "", line[160];
	int i;

	for (i = 1; i <= n; i++) {
		key_line(line, i, len);
		strcat(text, line);
		strcat(text, eol);
	}
	write_file(path, text, 0600);
}

/*
 * The message expected in self->err, into want[]; a message that does not
 * fit fails the test rather than comparing a truncated one.
 */
#define WANT(...) ASSERT_GT((int)sizeof(want), snprintf(want, sizeof(want), __VA_ARGS__))

static int load(FIXTURE_DATA(tk) *self, struct mk_ticket_keys **k)
{
	self->err[0] = '\0';
	return mk_ticket_keys_load(&self->cfg, &self->lc, k, self->err, sizeof(self->err));
}

TEST_F(tk, three_keys_second_to_last_encrypts)
{
	struct mk_ticket_keys *k;

	write_keys(self->path, 3, 80, "\n");
	ASSERT_EQ(0, load(self, &k));
	EXPECT_EQ(32u, k->tks_len);
	EXPECT_EQ(2, k->tks_key[k->tks_enc].tk_name[0]);
	EXPECT_EQ(2, k->tks_key[k->tks_enc].tk_aes[31]);
	EXPECT_EQ(2, k->tks_key[k->tks_enc].tk_hmac[31]);
	mk_ticket_keys_free(k);
}

/* Appending keys rotates: the last three decrypt, the penultimate encrypts. */
TEST_F(tk, rotation_keeps_the_last_three)
{
	struct mk_ticket_keys *k;
	int n, i, seen;

	for (n = 3; n <= 7; n++) {
		write_keys(self->path, n, 48, "\r\n");
		ASSERT_EQ(0, load(self, &k)) TH_LOG("%s", self->err);
		EXPECT_EQ(16u, k->tks_len);
		EXPECT_EQ(n - 1, k->tks_key[k->tks_enc].tk_name[0]);
		for (seen = 0, i = 0; i < MK_TICKET_KEYS_USED; i++)
			seen |= 1 << k->tks_key[i].tk_name[0];
		EXPECT_EQ((1 << n) | (1 << (n - 1)) | (1 << (n - 2)), seen);
		mk_ticket_keys_free(k);
	}
}

TEST_F(tk, blank_lines_skipped)
{
	struct mk_ticket_keys *k;
	char a[160], b[160], c[160], text[600];

	key_line(a, 1, 80);
	key_line(b, 2, 80);
	key_line(c, 3, 80);
	snprintf(text, sizeof(text), "\n%s\n\n%s\n%s", a, b, c);	/* no final newline */
	write_file(self->path, text, 0640);
	ASSERT_EQ(0, load(self, &k)) TH_LOG("%s", self->err);
	EXPECT_EQ(2, k->tks_key[k->tks_enc].tk_name[0]);
	mk_ticket_keys_free(k);
}

/*
 * The expected message into want[]; the test stops if it did not fit, so a
 * long temporary path can never make a truncated expectation match.
 */
#define WANT(...) ASSERT_GT((int)sizeof(want), snprintf(want, sizeof(want), __VA_ARGS__))

TEST_F(tk, refusals)
{
	struct mk_ticket_keys *k = NULL;
	char a[160], b[160], text[1024], want[400];

	write_keys(self->path, 3, 80, "\n");
	chmod(self->path, 0604);
	EXPECT_EQ(-EINVAL, load(self, &k));
	WANT("m.conf:12: ticket_keys %s: must be a regular file that "
		 "others cannot read or write (mode 0604; chmod o-rwx)", self->path);
	EXPECT_STREQ(want, self->err);

	write_keys(self->path, 2, 80, "\n");
	EXPECT_EQ(-EINVAL, load(self, &k));
	WANT("m.conf:12: ticket_keys %s: fewer than 3 keys (the last 3 "
		 "are used, the second-to-last encrypts)", self->path);
	EXPECT_STREQ(want, self->err);

	key_line(a, 1, 80);
	key_line(b, 2, 48);
	snprintf(text, sizeof(text), "%s\n%s\n%s\n", a, b, a);
	write_file(self->path, text, 0600);
	EXPECT_EQ(-EINVAL, load(self, &k));
	WANT("m.conf:12: ticket_keys %s line 2: 48 and 80 byte keys "
		 "mixed (the first key sets the size)", self->path);
	EXPECT_STREQ(want, self->err);

	key_line(b, 2, 64);	/* valid base64, wrong size */
	snprintf(text, sizeof(text), "%s\n%s\n%s\n%s\n", a, a, a, b);
	write_file(self->path, text, 0600);
	EXPECT_EQ(-EINVAL, load(self, &k));
	WANT("m.conf:12: ticket_keys %s line 4: not the base64 of a 48 "
		 "or 80 byte key", self->path);
	EXPECT_STREQ(want, self->err);
	/* The message never quotes a key. */
	EXPECT_EQ(NULL, strstr(self->err, a));

	snprintf(text, sizeof(text), "%s\n%s x\n%s\n", a, a, a);
	write_file(self->path, text, 0600);
	EXPECT_EQ(-EINVAL, load(self, &k));
	EXPECT_NE(NULL, strstr(self->err, "line 2: not the base64"));

	unlink(self->path);
	EXPECT_EQ(-EINVAL, load(self, &k));
	WANT("m.conf:12: ticket_keys %s: cannot open: No such file or "
		 "directory", self->path);
	EXPECT_STREQ(want, self->err);
	EXPECT_EQ(NULL, k);
}

TEST_F(tk, file_too_large)
{
	struct mk_ticket_keys *k = NULL;
	char *big = malloc(MK_TICKET_FILE_MAX + 2);

	ASSERT_NE(NULL, big);
	memset(big, '\n', MK_TICKET_FILE_MAX + 1);
	big[MK_TICKET_FILE_MAX + 1] = '\0';
	write_file(self->path, big, 0600);
	free(big);
	EXPECT_EQ(-EINVAL, load(self, &k));
	EXPECT_NE(NULL, strstr(self->err, "larger than 65536 bytes"));
}

TEST_HARNESS_MAIN
