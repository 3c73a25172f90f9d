// SPDX-License-Identifier: GPL-2.0
/*
 * mailktlsd.conf(5) documents exactly the keys the parser knows: a key added
 * to the parser without a line in the manual, or a manual entry for a key
 * that is gone, fails here. The manual's key entries are the tagged
 * paragraphs of its two KEYS sections, ".TP" then "\fBkey\fR = ...".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "kselftest_harness.h"

#define MK_MANUAL "man/mailktlsd.conf.5"
#define MK_MAX_DOC_KEYS 128

struct doc_keys {
	char dk_name[MK_MAX_DOC_KEYS][64];
	int dk_n;
};

/* The keys the manual documents; -1 when it cannot be read. */
static int read_manual(const char *path, struct doc_keys *dk)
{
	char line[512], *end;
	bool in_keys = false, after_tp = false;
	FILE *f = fopen(path, "r");

	if (!f)
		return -1;
	dk->dk_n = 0;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, ".SH ", 4))
			in_keys = strstr(line, "KEYS") != NULL;
		if (in_keys && after_tp && !strncmp(line, "\\fB", 3) &&
		    (end = strstr(line + 3, "\\fR")) && dk->dk_n < MK_MAX_DOC_KEYS &&
		    end - (line + 3) < 64) {
			memcpy(dk->dk_name[dk->dk_n], line + 3, (size_t)(end - (line + 3)));
			dk->dk_name[dk->dk_n++][end - (line + 3)] = '\0';
		}
		after_tp = !strncmp(line, ".TP", 3);
	}
	fclose(f);
	return 0;
}

static bool documented(const struct doc_keys *dk, const char *key)
{
	int i;

	for (i = 0; i < dk->dk_n; i++)
		if (!strcmp(dk->dk_name[i], key))
			return true;
	return false;
}

static bool parsed(const char *key)
{
	const char *k;
	size_t i;

	for (i = 0; (k = mk_config_key_name(i)); i++)
		if (!strcmp(k, key))
			return true;
	return false;
}

TEST(every_parser_key_is_in_the_manual)
{
	struct doc_keys dk;
	char key[64];
	size_t i;

	ASSERT_EQ(0, read_manual(MK_MANUAL, &dk)) TH_LOG("cannot read %s (run from the tree's top)", MK_MANUAL);
	ASSERT_LT(10, dk.dk_n) TH_LOG("only %d key entries found in %s", dk.dk_n, MK_MANUAL);
	for (i = 0; mk_config_key_name(i); i++) {
		snprintf(key, sizeof(key), "%s", mk_config_key_name(i));
		EXPECT_TRUE(documented(&dk, key)) TH_LOG("key '%s' is not documented in %s", key, MK_MANUAL);
	}
}

TEST(every_manual_key_is_parsed)
{
	struct doc_keys dk;
	int i;

	ASSERT_EQ(0, read_manual(MK_MANUAL, &dk));
	for (i = 0; i < dk.dk_n; i++) {
		const char *name = dk.dk_name[i];

		EXPECT_TRUE(parsed(name)) TH_LOG("%s documents '%s', which the parser does not know",
						 MK_MANUAL, name);
	}
}

TEST_HARNESS_MAIN
