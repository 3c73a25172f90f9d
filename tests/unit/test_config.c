// SPDX-License-Identifier: GPL-2.0
/*
 * The config parser: what operators write must mean what they expect, and
 * every mistake must be reported as "FILE:LINE: message" at the right line.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/tls1.h>

#include "config.h"
#include "kselftest_harness.h"
#include "proxy_v2.h"

/* Lines 1-7; tests append to it or replace a line. */
#define IMAPS \
	"[listener imaps]\n" \
	"listen = 127.0.0.1:993\n" \
	"protocol = imap\n" \
	"tls = implicit\n" \
	"backend = 127.0.0.1:143\n" \
	"certificate = /etc/ssl/rsa.pem\n" \
	"private_key = /etc/ssl/rsa.key\n"

static int parse(const char *text, struct mk_config **cfg, char *err)
{
	return mk_config_parse_buffer("t.conf", text, strlen(text), cfg, err, MK_ERR_MAX);
}

/* Parse @text, which must fail with exactly @msg. */
static void bad(struct __test_metadata *_metadata, const char *text, const char *msg)
{
	struct mk_config *cfg = NULL;
	char err[MK_ERR_MAX];

	EXPECT_EQ(-EINVAL, parse(text, &cfg, err)) {
		TH_LOG("accepted: %s", text);
	}
	EXPECT_STREQ(msg, err);
	EXPECT_EQ(NULL, cfg);
}

static struct mk_config *good(struct __test_metadata *_metadata, const char *text)
{
	struct mk_config *cfg = NULL;
	char err[MK_ERR_MAX] = "";

	EXPECT_EQ(0, parse(text, &cfg, err)) {
		TH_LOG("%s", err);
	}
	return cfg;
}

static unsigned short port_of(const struct mk_sockaddr *a)
{
	const struct sockaddr_in *s4 = (const void *)&a->sa_storage;
	const struct sockaddr_in6 *s6 = (const void *)&a->sa_storage;

	return ntohs(s4->sin_family == AF_INET ? s4->sin_port : s6->sin6_port);
}

TEST(every_key)
{
	static const char text[] =
		"# comment\n"
		"[global]\n"
		"workers = 4\n"
		"log = syslog\n"
		"query_socket = /run/q.sock\n"
		"ktls = require\n"
		"[listener sub]\n"
		"listen = 192.0.2.1:587\n"
		"protocol = submission\n"
		"tls = starttls\n"
		"backend = 127.0.0.1:10587\n"
		"proxy_protocol = none\n"
		"certificate = /c/rsa.pem\n"
		"private_key = /c/rsa.key\n"
		"certificate = /c/ec.pem\n"
		"private_key = /c/ec.key\n"
		"min_version = 1.3\n"
		"alpn = off\n"
		"handshake_timeout = 5s\n"
		"idle_timeout = 2h\n"
		"max_connections = 77\n"
		"hostname = mx1.example.org\n"
		"pretls_timeout = 45\n"
		"pretls_max_commands = 9\n"
		"max_auth_refusals = 0\n";
	struct mk_config *cfg = good(_metadata, text);
	struct mk_listener_cfg *lc;

	ASSERT_NE(NULL, cfg);
	EXPECT_STREQ("t.conf", cfg->cf_path);
	EXPECT_EQ(4, cfg->cf_workers);
	EXPECT_EQ(MK_LOG_SYSLOG, cfg->cf_log);
	EXPECT_STREQ("/run/q.sock", cfg->cf_query_socket);
	EXPECT_EQ(MK_KTLS_REQUIRE, cfg->cf_ktls);
	ASSERT_EQ(1, cfg->cf_nlisteners);
	lc = &cfg->cf_listeners[0];
	EXPECT_STREQ("sub", lc->lc_name);
	EXPECT_EQ(7, lc->lc_line);
	EXPECT_EQ(AF_INET, lc->lc_listen.sa_storage.ss_family);
	EXPECT_EQ(sizeof(struct sockaddr_in), lc->lc_listen.sa_len);
	EXPECT_EQ(587, port_of(&lc->lc_listen));
	EXPECT_STREQ("192.0.2.1:587", lc->lc_listen.sa_text);
	EXPECT_EQ(MK_PROTO_SUBMISSION, lc->lc_protocol);
	EXPECT_EQ(MK_TLS_STARTTLS, lc->lc_tls);
	EXPECT_EQ(10587, port_of(&lc->lc_backend));
	EXPECT_FALSE(lc->lc_proxy_v2);
	ASSERT_EQ(2, lc->lc_ncerts);
	EXPECT_STREQ("/c/rsa.pem", lc->lc_certs[0].cp_cert);
	EXPECT_STREQ("/c/rsa.key", lc->lc_certs[0].cp_key);
	EXPECT_EQ(13, lc->lc_certs[0].cp_line);
	EXPECT_STREQ("/c/ec.pem", lc->lc_certs[1].cp_cert);
	EXPECT_STREQ("/c/ec.key", lc->lc_certs[1].cp_key);
	EXPECT_EQ(15, lc->lc_certs[1].cp_line);
	EXPECT_EQ(TLS1_3_VERSION, lc->lc_min_version);
	EXPECT_FALSE(lc->lc_alpn_strict);
	EXPECT_EQ(5000, lc->lc_handshake_timeout_ms);
	EXPECT_EQ(7200000, lc->lc_idle_timeout_ms);
	EXPECT_EQ(77, lc->lc_max_connections);
	EXPECT_STREQ("mx1.example.org", lc->lc_hostname);
	EXPECT_EQ(45000, lc->lc_pretls_timeout_ms);
	EXPECT_EQ(9, lc->lc_pretls_max_commands);
	EXPECT_EQ(0, lc->lc_max_auth_refusals);
	mk_config_free(cfg);
}

TEST(key_process)
{
	struct mk_config *cfg = good(_metadata, "[global]\nkey_process = no\n" IMAPS);

	ASSERT_NE(NULL, cfg);
	EXPECT_FALSE(cfg->cf_key_process);
	mk_config_free(cfg);
}

TEST(builtin_defaults)
{
	struct mk_config *cfg = good(_metadata, IMAPS);
	struct mk_listener_cfg *lc;
	char host[MK_HOSTNAME_MAX] = "";

	ASSERT_NE(NULL, cfg);
	EXPECT_EQ(0, cfg->cf_workers);
	EXPECT_EQ(MK_LOG_STDERR, cfg->cf_log);
	EXPECT_STREQ("/run/mailktls/query.sock", cfg->cf_query_socket);
	EXPECT_EQ(MK_KTLS_AUTO, cfg->cf_ktls);
	EXPECT_TRUE(cfg->cf_key_process);
	lc = &cfg->cf_listeners[0];
	EXPECT_TRUE(lc->lc_proxy_v2);
	EXPECT_EQ(PP2_SEND_DEFAULT, lc->lc_proxy_tlvs);
	EXPECT_EQ(232, lc->lc_proxy_header_max);
	EXPECT_EQ(TLS1_2_VERSION, lc->lc_min_version);
	EXPECT_TRUE(lc->lc_alpn_strict);
	EXPECT_EQ(10000, lc->lc_handshake_timeout_ms);
	EXPECT_EQ(30 * 60 * 1000, lc->lc_idle_timeout_ms);
	EXPECT_EQ(10000, lc->lc_max_connections);
	ASSERT_EQ(0, gethostname(host, sizeof(host) - 1));
	EXPECT_STREQ(host, lc->lc_hostname);
	EXPECT_EQ(60000, lc->lc_pretls_timeout_ms);
	EXPECT_EQ(32, lc->lc_pretls_max_commands);
	EXPECT_EQ(3, lc->lc_max_auth_refusals);
	mk_config_free(cfg);
}

/* [defaults] applies to listeners before and after it; own values win. */
TEST(defaults_inherited)
{
	static const char text[] =
		"[listener pop3s]\n"
		"listen = 0.0.0.0:995\n"
		"protocol = pop3\n"
		"backend = 127.0.0.1:110\n"
		"idle_timeout = 10m\n"
		"[defaults]\n"
		"tls = implicit\n"
		"idle_timeout = 1h\n"
		"alpn = off\n"
		"certificate = /d/rsa.pem\n"
		"private_key = /d/rsa.key\n"
		"certificate = /d/ec.pem\n"
		"private_key = /d/ec.key\n"
		"[listener imaps]\n"
		"listen = 0.0.0.0:993\n"
		"protocol = imap\n"
		"backend = 127.0.0.1:143\n"
		"certificate = /own.pem\n"
		"private_key = /own.key\n"
		"alpn = strict\n";
	struct mk_config *cfg = good(_metadata, text);
	struct mk_listener_cfg *pop, *imap;

	ASSERT_NE(NULL, cfg);
	ASSERT_EQ(2, cfg->cf_nlisteners);
	pop = &cfg->cf_listeners[0];
	imap = &cfg->cf_listeners[1];
	EXPECT_EQ(MK_TLS_IMPLICIT, pop->lc_tls);
	EXPECT_EQ(600000, pop->lc_idle_timeout_ms);
	EXPECT_FALSE(pop->lc_alpn_strict);
	ASSERT_EQ(2, pop->lc_ncerts);
	EXPECT_STREQ("/d/ec.pem", pop->lc_certs[1].cp_cert);
	EXPECT_STREQ("/d/ec.key", pop->lc_certs[1].cp_key);
	EXPECT_EQ(12, pop->lc_certs[1].cp_line);
	EXPECT_EQ(3600000, imap->lc_idle_timeout_ms);
	EXPECT_TRUE(imap->lc_alpn_strict);
	ASSERT_EQ(1, imap->lc_ncerts);
	EXPECT_STREQ("/own.pem", imap->lc_certs[0].cp_cert);
	EXPECT_EQ(10000, imap->lc_max_connections);
	mk_config_free(cfg);
}

TEST(ipv6_and_unix)
{
	static const char text[] =
		"[listener a]\n"
		"listen = [::]:993\n"
		"protocol = imap\n"
		"tls = implicit\n"
		"backend = [2001:db8::1]:143\n"
		"certificate = c\n"
		"private_key = k\n"
		"[listener b]\n"
		"listen = 0.0.0.0:993\n"	/* next to [::]:993: fine, V6ONLY */
		"protocol = imap\n"
		"tls = implicit\n"
		"backend = unix:/run/dovecot/imap-proxy\n"
		"certificate = c\n"
		"private_key = k\n";
	struct mk_config *cfg = good(_metadata, text);
	const struct sockaddr_in6 *s6;
	const struct sockaddr_un *sun;
	char buf[INET6_ADDRSTRLEN];

	ASSERT_NE(NULL, cfg);
	s6 = (const void *)&cfg->cf_listeners[0].lc_listen.sa_storage;
	EXPECT_EQ(AF_INET6, s6->sin6_family);
	EXPECT_TRUE(IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr));
	EXPECT_EQ(993, ntohs(s6->sin6_port));
	s6 = (const void *)&cfg->cf_listeners[0].lc_backend.sa_storage;
	EXPECT_EQ(sizeof(*s6), cfg->cf_listeners[0].lc_backend.sa_len);
	inet_ntop(AF_INET6, &s6->sin6_addr, buf, sizeof(buf));
	EXPECT_STREQ("2001:db8::1", buf);
	EXPECT_EQ(143, ntohs(s6->sin6_port));
	sun = (const void *)&cfg->cf_listeners[1].lc_backend.sa_storage;
	EXPECT_EQ(AF_UNIX, sun->sun_family);
	EXPECT_STREQ("/run/dovecot/imap-proxy", sun->sun_path);
	EXPECT_EQ(offsetof(struct sockaddr_un, sun_path) + strlen(sun->sun_path) + 1,
		  cfg->cf_listeners[1].lc_backend.sa_len);
	EXPECT_STREQ("unix:/run/dovecot/imap-proxy", cfg->cf_listeners[1].lc_backend.sa_text);
	mk_config_free(cfg);
}

TEST(durations)
{
	static const struct { const char *text; unsigned int ms; } ok[] = {
		{ "30", 30000 }, { "30s", 30000 }, { "5m", 300000 }, { "1h", 3600000 },
		{ "500ms", 500 }, { "168h", 168u * 3600 * 1000 },
	};
	static const char *const nok[] = {
		"0", "0ms", "-1", "1d", "1.5s", "30 s", "s", "169h", "0x10", "99999999999999999999",
	};
	char text[512], msg[512];
	struct mk_config *cfg;
	size_t i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		snprintf(text, sizeof(text), IMAPS "handshake_timeout = %s\n", ok[i].text);
		cfg = good(_metadata, text);
		ASSERT_NE(NULL, cfg);
		EXPECT_EQ(ok[i].ms, cfg->cf_listeners[0].lc_handshake_timeout_ms);
		mk_config_free(cfg);
	}
	for (i = 0; i < sizeof(nok) / sizeof(nok[0]); i++) {
		snprintf(text, sizeof(text), IMAPS "idle_timeout = %s\n", nok[i]);
		snprintf(msg, sizeof(msg), "t.conf:8: bad value '%s' for 'idle_timeout' (expected "
			 "a duration such as 500ms, 30s, 5m or 1h, at most 168h)", nok[i]);
		bad(_metadata, text, msg);
	}
}

TEST(comments_whitespace_crlf)
{
	static const char text[] =
		"; a comment\r\n"
		"   # another\n"
		"\n"
		"  [ global ]  \n"
		"\tworkers=auto   # one per core\n"
		"query_socket =\n"
		IMAPS
		"hostname = mail.example.org ; trailing\r\n";
	struct mk_config *cfg = good(_metadata, text);

	ASSERT_NE(NULL, cfg);
	EXPECT_EQ(0, cfg->cf_workers);
	EXPECT_STREQ("", cfg->cf_query_socket);
	EXPECT_STREQ("mail.example.org", cfg->cf_listeners[0].lc_hostname);
	mk_config_free(cfg);
}

TEST(protocol_names)
{
	EXPECT_STREQ("imap", mk_protocol_name(MK_PROTO_IMAP));
	EXPECT_STREQ("pop3", mk_protocol_name(MK_PROTO_POP3));
	EXPECT_STREQ("submission", mk_protocol_name(MK_PROTO_SUBMISSION));
}

TEST(load_file)
{
	char path[] = "/tmp/mk-test-config-XXXXXX", err[MK_ERR_MAX], msg[MK_ERR_MAX + 64];
	struct mk_config *cfg = NULL;
	int fd = mkstemp(path);

	ASSERT_LE(0, fd);
	ASSERT_EQ((ssize_t)strlen(IMAPS "bogus\n"), write(fd, IMAPS "bogus\n",
							   strlen(IMAPS "bogus\n")));
	close(fd);
	EXPECT_EQ(-EINVAL, mk_config_load(path, &cfg, err, sizeof(err)));
	snprintf(msg, sizeof(msg), "%s:8: expected 'key = value', a [section] or a comment", path);
	EXPECT_STREQ(msg, err);
	fd = open(path, O_WRONLY | O_TRUNC);
	ASSERT_LE(0, fd);
	ASSERT_EQ((ssize_t)strlen(IMAPS), write(fd, IMAPS, strlen(IMAPS)));
	close(fd);
	EXPECT_EQ(0, mk_config_load(path, &cfg, err, sizeof(err)));
	ASSERT_NE(NULL, cfg);
	EXPECT_STREQ(path, cfg->cf_path);
	mk_config_free(cfg);
	unlink(path);
	cfg = NULL;
	EXPECT_EQ(-ENOENT, mk_config_load(path, &cfg, err, sizeof(err)));
	snprintf(msg, sizeof(msg), "%s: cannot read: No such file or directory", path);
	EXPECT_STREQ(msg, err);
	EXPECT_EQ(NULL, cfg);
}

TEST(bad_sections)
{
	bad(_metadata, IMAPS "[listeners x]\n",
	    "t.conf:8: unknown section [listeners x] (expected [global], [defaults] or "
	    "[listener NAME])");
	bad(_metadata, "[global\n", "t.conf:1: bad section header (expected [global], "
	    "[defaults] or [listener NAME])");
	bad(_metadata, "[listener]\n", "t.conf:1: listener without a name (expected "
	    "[listener NAME])");
	bad(_metadata, "[listener a/b]\n", "t.conf:1: bad listener name 'a/b' (expected 1 to "
	    "63 of A-Z a-z 0-9 . _ -)");
	bad(_metadata, "[global]\n[global]\n", "t.conf:2: duplicate section [global] "
	    "(first at line 1)");
	bad(_metadata, "workers = 2\n[global]\n", "t.conf:1: key 'workers' outside a section");
	bad(_metadata, IMAPS "\n" IMAPS, "t.conf:9: duplicate listener name 'imaps' "
	    "(first at line 1)");
	bad(_metadata, "[global]\nworkers = 1\n", "t.conf: no [listener NAME] section");
}

TEST(bad_keys)
{
	bad(_metadata, IMAPS "colour = blue\n", "t.conf:8: unknown key 'colour' in "
	    "[listener imaps]");
	bad(_metadata, "[global]\nlisten = 1.2.3.4:5\n", "t.conf:2: unknown key 'listen' in "
	    "[global] (listener keys go in [defaults] or [listener NAME])");
	bad(_metadata, IMAPS "ktls = off\n", "t.conf:8: unknown key 'ktls' in [listener imaps] "
	    "(it goes in [global])");
	bad(_metadata, IMAPS "protocol = pop3\n", "t.conf:8: duplicate key 'protocol' "
	    "(first at line 3)");
	bad(_metadata, IMAPS "just words\n", "t.conf:8: expected 'key = value', a [section] "
	    "or a comment");
	bad(_metadata, IMAPS " = x\n", "t.conf:8: expected 'key = value', a [section] "
	    "or a comment");
}

TEST(bad_values)
{
	static const struct { const char *line, *msg; } cases[] = {
		{ "workers = many", "bad value 'many' for 'workers' (expected auto or a number "
		  "from 0 to 1024)" },
		{ "log = file", "bad value 'file' for 'log' (expected stderr or syslog)" },
		{ "query_socket = run/q", "bad value 'run/q' for 'query_socket' (expected an "
		  "absolute path shorter than 108 bytes, or nothing)" },
		{ "ktls = yes", "bad value 'yes' for 'ktls' (expected auto, require or off)" },
		{ "key_process = on", "bad value 'on' for 'key_process' (expected yes or no)" },
	};
	static const struct { const char *line, *msg; } lcases[] = {
		{ "listen = localhost:993", "bad value 'localhost:993' for 'listen' (expected "
		  "IPv4:port or [IPv6]:port)" },
		{ "listen = 127.0.0.1:0", "bad value '127.0.0.1:0' for 'listen' (expected "
		  "IPv4:port or [IPv6]:port)" },
		{ "listen = ::1:993", "bad value '::1:993' for 'listen' (expected "
		  "IPv4:port or [IPv6]:port)" },
		{ "listen = unix:/x", "bad value 'unix:/x' for 'listen' (expected "
		  "IPv4:port or [IPv6]:port)" },
		{ "backend = 127.0.0.1:65536", "bad value '127.0.0.1:65536' for 'backend' "
		  "(expected IPv4:port, [IPv6]:port or unix:/absolute/path)" },
		{ "backend = unix:run/x", "bad value 'unix:run/x' for 'backend' "
		  "(expected IPv4:port, [IPv6]:port or unix:/absolute/path)" },
		{ "protocol = smtp", "bad value 'smtp' for 'protocol' (expected imap, pop3 or "
		  "submission)" },
		{ "tls = yes", "bad value 'yes' for 'tls' (expected implicit or starttls)" },
		{ "proxy_protocol = v1", "bad value 'v1' for 'proxy_protocol' (expected v2 or "
		  "none)" },
		{ "min_version = 1.1", "bad value '1.1' for 'min_version' (expected 1.2 or 1.3)" },
		{ "alpn = on", "bad value 'on' for 'alpn' (expected strict or off)" },
		{ "max_connections = 0", "bad value '0' for 'max_connections' (expected a number "
		  "from 1 to 1000000)" },
		{ "max_connections = +5", "bad value '+5' for 'max_connections' (expected a "
		  "number from 1 to 1000000)" },
		{ "pretls_max_commands = 1001", "bad value '1001' for 'pretls_max_commands' "
		  "(expected a number from 1 to 1000)" },
		{ "max_auth_refusals = -1", "bad value '-1' for 'max_auth_refusals' (expected a "
		  "number from 0 to 1000)" },
		{ "hostname = mail example", "bad value 'mail example' for 'hostname' "
		  "(expected a DNS host name)" },
		{ "hostname = -mail.example", "bad value '-mail.example' for 'hostname' "
		  "(expected a DNS host name)" },
		{ "hostname = mail..example", "bad value 'mail..example' for 'hostname' "
		  "(expected a DNS host name)" },
		{ "hostname =", "bad value '' for 'hostname' (expected a DNS host name)" },
	};
	char text[1024], msg[512];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), "[global]\n%s\n" IMAPS, cases[i].line);
		snprintf(msg, sizeof(msg), "t.conf:2: %s", cases[i].msg);
		bad(_metadata, text, msg);
	}
	for (i = 0; i < sizeof(lcases) / sizeof(lcases[0]); i++) {
		snprintf(text, sizeof(text), "[listener imaps]\n%s\n", lcases[i].line);
		snprintf(msg, sizeof(msg), "t.conf:2: %s", lcases[i].msg);
		bad(_metadata, text, msg);
	}
	/* A control character could end a greeting line early: refused. */
	bad(_metadata, IMAPS "hostname = a\x0b" "b\n", "t.conf:8: control character 0x0b in line");
}

TEST(proxy_tlvs_and_header_max)
{
	struct mk_config *cfg;

	cfg = good(_metadata, "[defaults]\nproxy_header_max = 1500\n"
		   "proxy_tlvs = ssl\talpn  authority\n" IMAPS
		   "[listener exim]\nlisten = [::1]:465\nprotocol = submission\ntls = implicit\n"
		   "backend = 127.0.0.1:25\ncertificate = /a\nprivate_key = /b\n"
		   "proxy_header_max = 52\nproxy_tlvs = none\n");
	ASSERT_NE(NULL, cfg);
	EXPECT_EQ(1500, cfg->cf_listeners[0].lc_proxy_header_max);
	EXPECT_EQ(PP2_SEND_SSL | PP2_SEND_ALPN | PP2_SEND_AUTHORITY,
		  cfg->cf_listeners[0].lc_proxy_tlvs);
	EXPECT_EQ(52, cfg->cf_listeners[1].lc_proxy_header_max);
	EXPECT_EQ(0u, cfg->cf_listeners[1].lc_proxy_tlvs);
	mk_config_free(cfg);
	cfg = good(_metadata, IMAPS "proxy_tlvs = alpn authority ssl ssl_version ssl_cipher "
		   "crc32c\nproxy_header_max = 28\n");
	ASSERT_NE(NULL, cfg);
	EXPECT_EQ(PP2_SEND_ALL & ~(PP2_SEND_SSL_SIG_ALG | PP2_SEND_SSL_CN),
		  cfg->cf_listeners[0].lc_proxy_tlvs);
	mk_config_free(cfg);
	/* No PROXY header at all: its limit does not matter. */
	cfg = good(_metadata, IMAPS "proxy_protocol = none\nproxy_header_max = 1\n");
	ASSERT_NE(NULL, cfg);
	mk_config_free(cfg);

	bad(_metadata, IMAPS "proxy_tlvs = alpn sni\n", "t.conf:8: unknown TLV 'sni' in "
	    "'proxy_tlvs' (expected none, or some of alpn authority ssl ssl_version "
	    "ssl_cipher ssl_cn crc32c)");
	bad(_metadata, IMAPS "proxy_tlvs = alpn none\n", "t.conf:8: unknown TLV 'none' in "
	    "'proxy_tlvs' (expected none, or some of alpn authority ssl ssl_version "
	    "ssl_cipher ssl_cn crc32c)");
	bad(_metadata, IMAPS "proxy_tlvs = ssl alpn ssl\n",
	    "t.conf:8: TLV 'ssl' twice in 'proxy_tlvs'");
	bad(_metadata, IMAPS "proxy_tlvs =\n", "t.conf:8: bad value '' for 'proxy_tlvs' "
	    "(expected none, or some of alpn authority ssl ssl_version ssl_cipher ssl_cn crc32c)");
	bad(_metadata, IMAPS "proxy_tlvs = alpn ssl_cipher\n", "t.conf:8: listener 'imaps': "
	    "ssl_version, ssl_cipher and ssl_cn are sent inside ssl: add ssl to proxy_tlvs");
	bad(_metadata, IMAPS "proxy_header_max = 27\n", "t.conf:8: listener 'imaps': "
	    "proxy_header_max = 27 is below the 28 bytes of a PROXY v2 header with IPv4 "
	    "addresses and no TLV");
	bad(_metadata, IMAPS "proxy_header_max = 0\n", "t.conf:8: bad value '0' for "
	    "'proxy_header_max' (expected a number of bytes from 1 to 65535)");
	bad(_metadata, IMAPS "proxy_header_max = 65536\n", "t.conf:8: bad value '65536' for "
	    "'proxy_header_max' (expected a number of bytes from 1 to 65535)");
	/* Inherited from [defaults]: the message names the line it came from. */
	bad(_metadata, "[defaults]\nproxy_header_max = 40\n[listener v6]\nlisten = [::]:993\n"
	    "protocol = imap\ntls = implicit\nbackend = 127.0.0.1:143\ncertificate = /a\n"
	    "private_key = /b\n", "t.conf:2: listener 'v6': proxy_header_max = 40 is below "
	    "the 52 bytes of a PROXY v2 header with IPv6 addresses and no TLV");
}

/* Each required key, removed from an otherwise good listener. */
/* ticket_keys and client_ca keep their line (for messages about the files). */
TEST(tickets_and_client_certs)
{
	struct mk_config *cfg;
	const struct mk_listener_cfg *lc;

	cfg = good(_metadata, "[defaults]\nticket_keys = /etc/mailktls/tickets\n"
		   "client_ca = /etc/mailktls/ca.pem\n" IMAPS "client_cert = optional\n"
		   "[listener pop3s]\nlisten = 127.0.0.1:995\nprotocol = pop3\ntls = implicit\n"
		   "backend = 127.0.0.1:110\ncertificate = /a\nprivate_key = /b\n"
		   "client_cert = require\nclient_ca = /other-ca.pem\n"
		   "[listener subm]\nlisten = 127.0.0.1:465\nprotocol = submission\n"
		   "tls = implicit\nbackend = 127.0.0.1:25\ncertificate = /a\nprivate_key = /b\n");
	ASSERT_NE(NULL, cfg);
	lc = &cfg->cf_listeners[0];
	EXPECT_STREQ("/etc/mailktls/tickets", lc->lc_ticket_keys.pc_path);
	EXPECT_EQ(2, lc->lc_ticket_keys.pc_line);
	EXPECT_STREQ("/etc/mailktls/ca.pem", lc->lc_client_ca.pc_path);
	EXPECT_EQ(3, lc->lc_client_ca.pc_line);
	EXPECT_EQ(MK_CLIENT_CERT_OPTIONAL, lc->lc_client_cert);
	lc = &cfg->cf_listeners[1];
	EXPECT_EQ(MK_CLIENT_CERT_REQUIRE, lc->lc_client_cert);
	EXPECT_STREQ("/other-ca.pem", lc->lc_client_ca.pc_path);
	EXPECT_EQ(20, lc->lc_client_ca.pc_line);
	lc = &cfg->cf_listeners[2];
	EXPECT_EQ(MK_CLIENT_CERT_NONE, lc->lc_client_cert);
	mk_config_free(cfg);

	cfg = good(_metadata, IMAPS);
	ASSERT_NE(NULL, cfg);
	EXPECT_STREQ("", cfg->cf_listeners[0].lc_ticket_keys.pc_path);
	EXPECT_EQ(MK_CLIENT_CERT_NONE, cfg->cf_listeners[0].lc_client_cert);
	mk_config_free(cfg);

	bad(_metadata, IMAPS "client_cert = require\n", "t.conf:8: listener 'imaps': "
	    "client_cert = require needs client_ca");
	bad(_metadata, IMAPS "client_cert = yes\n", "t.conf:8: bad value 'yes' for 'client_cert' "
	    "(expected none, optional or require)");
	bad(_metadata, IMAPS "ticket_keys =\n", "t.conf:8: bad value '' for 'ticket_keys' "
	    "(expected a file name)");
	bad(_metadata, IMAPS "client_ca = /a\nclient_ca = /b\n",
	    "t.conf:9: duplicate key 'client_ca' (first at line 8)");
	bad(_metadata, "[global]\nticket_keys = /t\n" IMAPS, "t.conf:2: unknown key "
	    "'ticket_keys' in [global] (listener keys go in [defaults] or [listener NAME])");
}

/*
 * groups: kept as written with its line (the linked OpenSSL judges the
 * names, tls_policy.c), inherited from [defaults], empty when unset so
 * that OpenSSL's own default (post-quantum first on 3.5) stays.
 */
TEST(groups)
{
	struct mk_config *cfg;
	const struct mk_listener_cfg *lc;

	cfg = good(_metadata, "[defaults]\ngroups = X25519MLKEM768:x25519\n" IMAPS
		   "[listener pop3s]\nlisten = 127.0.0.1:995\nprotocol = pop3\ntls = implicit\n"
		   "backend = 127.0.0.1:110\ncertificate = /a\nprivate_key = /b\n"
		   "groups = ?X25519MLKEM768:*secp384r1/x448:-ffdhe2048\n");
	ASSERT_NE(NULL, cfg);
	lc = &cfg->cf_listeners[0];
	EXPECT_STREQ("X25519MLKEM768:x25519", lc->lc_groups.gc_list);
	EXPECT_EQ(2, lc->lc_groups.gc_line);
	lc = &cfg->cf_listeners[1];
	EXPECT_STREQ("?X25519MLKEM768:*secp384r1/x448:-ffdhe2048", lc->lc_groups.gc_list);
	EXPECT_EQ(17, lc->lc_groups.gc_line);
	mk_config_free(cfg);

	cfg = good(_metadata, IMAPS);
	ASSERT_NE(NULL, cfg);
	EXPECT_STREQ("", cfg->cf_listeners[0].lc_groups.gc_list);
	mk_config_free(cfg);

	bad(_metadata, IMAPS "groups =\n", "t.conf:8: bad value '' for 'groups' (expected "
	    "group names separated by colons, such as X25519MLKEM768:x25519:secp256r1)");
	bad(_metadata, IMAPS "groups = x25519 secp256r1\n", "t.conf:8: bad value 'x25519 "
	    "secp256r1' for 'groups' (expected group names separated by colons, such as "
	    "X25519MLKEM768:x25519:secp256r1)");
	bad(_metadata, IMAPS "groups = x25519\ngroups = secp256r1\n",
	    "t.conf:9: duplicate key 'groups' (first at line 8)");
	bad(_metadata, "[global]\ngroups = x25519\n" IMAPS, "t.conf:2: unknown key "
	    "'groups' in [global] (listener keys go in [defaults] or [listener NAME])");
}

TEST(missing_keys)
{
	static const char *const keys[] = { "listen", "protocol", "tls", "backend",
					    "certificate" };
	char text[1024], msg[256], key[32], *p, *eol;
	size_t i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		snprintf(text, sizeof(text), "[global]\n" IMAPS);
		snprintf(key, sizeof(key), "\n%s =", keys[i]);
		p = strstr(text, key) + 1;
		eol = strchr(p, '\n') + 1;
		if (strcmp(keys[i], "certificate") == 0)
			eol = strchr(eol, '\n') + 1;	/* and its private_key */
		memmove(p, eol, strlen(eol) + 1);
		snprintf(msg, sizeof(msg), "t.conf:2: listener 'imaps' has no '%s'", keys[i]);
		bad(_metadata, text, msg);
	}
}

TEST(cert_key_pairs)
{
	bad(_metadata, IMAPS "private_key = /x.key\n",
	    "t.conf:8: private_key without certificate");
	bad(_metadata, IMAPS "certificate = /a.pem\ncertificate = /b.pem\nprivate_key = /b.key\n",
	    "t.conf:8: certificate without private_key");
	bad(_metadata, IMAPS "certificate = /a.pem\n[global]\n",
	    "t.conf:8: certificate without private_key");
	bad(_metadata, IMAPS "certificate = /a.pem\n", "t.conf:8: certificate without private_key");
	bad(_metadata, IMAPS
	    "certificate = /2.pem\nprivate_key = /2.key\n"
	    "certificate = /3.pem\nprivate_key = /3.key\n"
	    "certificate = /4.pem\nprivate_key = /4.key\n"
	    "certificate = /5.pem\nprivate_key = /5.key\n",
	    "t.conf:14: too many certificate/private_key pairs (max 4)");
	bad(_metadata, "[defaults]\nprivate_key = /k\n",
	    "t.conf:2: private_key without certificate");
}

TEST(address_clash)
{
	static const char second[] =
		"[listener b]\n"
		"protocol = imap\n"
		"tls = implicit\n"
		"backend = 127.0.0.1:143\n"
		"certificate = c\n"
		"private_key = k\n";
	char text[1024];

	snprintf(text, sizeof(text), IMAPS "%slisten = 127.0.0.1:993\n", second);
	bad(_metadata, text, "t.conf:14: listener 'b': address 127.0.0.1:993 overlaps "
	    "127.0.0.1:993 of listener 'imaps' (line 2)");
	snprintf(text, sizeof(text), IMAPS "%slisten = 0.0.0.0:993\n", second);
	bad(_metadata, text, "t.conf:14: listener 'b': address 0.0.0.0:993 overlaps "
	    "127.0.0.1:993 of listener 'imaps' (line 2)");
	snprintf(text, sizeof(text), IMAPS "%slisten = 127.0.0.2:993\n", second);
	mk_config_free(good(_metadata, text));
	snprintf(text, sizeof(text), IMAPS "%slisten = 127.0.0.1:994\n", second);
	mk_config_free(good(_metadata, text));
}

TEST(limits)
{
	size_t big = 1024 * 1024 + 1;
	char *text = malloc(big + 4096), err[MK_ERR_MAX];
	struct mk_config *cfg = NULL;
	int n;

	ASSERT_NE(NULL, text);
	n = snprintf(text, 64, "[global]\n# ");
	memset(text + n, 'x', 4097);
	strcpy(text + n + 4097, "\n");
	bad(_metadata, text, "t.conf:2: line too long (max 4096 bytes)");
	text[n + 4094] = '\n';	/* "# " and 4094 x: exactly 4096 bytes */
	strcpy(text + n + 4095, IMAPS);
	mk_config_free(good(_metadata, text));
	memset(text, '\n', big);
	EXPECT_EQ(-EINVAL, mk_config_parse_buffer("t.conf", text, big, &cfg, err, sizeof(err)));
	EXPECT_STREQ("t.conf: file too large (max 1048576 bytes)", err);
	free(text);
	EXPECT_EQ(-EINVAL, mk_config_parse_buffer("t.conf", "[global]\n\0\n", 11, &cfg, err,
						  sizeof(err)));
	EXPECT_STREQ("t.conf:2: NUL byte in line", err);
}

TEST(many_listeners)
{
	char *text = malloc(70 * 256), *p = text;
	int i;

	ASSERT_NE(NULL, text);
	for (i = 0; i < MK_MAX_LISTENERS + 1; i++)
		p += sprintf(p, "[listener l%d]\nlisten = 127.0.0.1:%d\nprotocol = imap\n"
			     "tls = implicit\nbackend = 127.0.0.1:143\ncertificate = c\n"
			     "private_key = k\n", i, 1000 + i);
	bad(_metadata, text, "t.conf:449: too many listeners (max 64)");
	*strstr(text, "[listener l64]") = '\0';
	{
		struct mk_config *cfg = good(_metadata, text);

		ASSERT_NE(NULL, cfg);
		EXPECT_EQ(64, cfg->cf_nlisteners);
		EXPECT_STREQ("l63", cfg->cf_listeners[63].lc_name);
		EXPECT_EQ(1063, port_of(&cfg->cf_listeners[63].lc_listen));
		mk_config_free(cfg);
	}
	free(text);
}

/* A load balancer in front: off by default, and never without trusted_proxies. */
TEST(accept_proxy)
{
	const struct mk_cidrs *tp;
	struct mk_config *cfg;

	cfg = good(_metadata, IMAPS);
	ASSERT_NE(NULL, cfg);
	EXPECT_FALSE(cfg->cf_listeners[0].lc_accept_proxy);
	EXPECT_EQ(0u, cfg->cf_listeners[0].lc_trusted_proxies.cs_n);
	EXPECT_EQ(5000, cfg->cf_listeners[0].lc_proxy_timeout_ms);
	mk_config_free(cfg);

	cfg = good(_metadata, "[defaults]\ntrusted_proxies = 10.0.0.0/8, 2001:db8::/32\t192.0.2.7\n"
		   IMAPS "accept_proxy = yes\nproxy_timeout = 1500ms\n");
	ASSERT_NE(NULL, cfg);
	EXPECT_TRUE(cfg->cf_listeners[0].lc_accept_proxy);
	EXPECT_EQ(1500, cfg->cf_listeners[0].lc_proxy_timeout_ms);
	tp = &cfg->cf_listeners[0].lc_trusted_proxies;
	ASSERT_EQ(3u, tp->cs_n);
	EXPECT_EQ(AF_INET, tp->cs_net[0].ci_family);
	EXPECT_EQ(8, tp->cs_net[0].ci_prefix);
	EXPECT_EQ(AF_INET6, tp->cs_net[1].ci_family);
	EXPECT_EQ(32, tp->cs_net[1].ci_prefix);
	EXPECT_EQ(32, tp->cs_net[2].ci_prefix);
	mk_config_free(cfg);
	/* Ranges alone do nothing, but are not an error. */
	cfg = good(_metadata, IMAPS "accept_proxy = no\ntrusted_proxies = 127.0.0.1/32\n");
	ASSERT_NE(NULL, cfg);
	EXPECT_FALSE(cfg->cf_listeners[0].lc_accept_proxy);
	mk_config_free(cfg);

	bad(_metadata, IMAPS "accept_proxy = yes\n", "t.conf:8: listener 'imaps': accept_proxy "
	    "= yes needs trusted_proxies (the load balancers' addresses)");
	bad(_metadata, "[defaults]\naccept_proxy = yes\n" IMAPS, "t.conf:2: listener 'imaps': "
	    "accept_proxy = yes needs trusted_proxies (the load balancers' addresses)");
	bad(_metadata, IMAPS "accept_proxy = on\n", "t.conf:8: bad value 'on' for "
	    "'accept_proxy' (expected yes or no)");
	bad(_metadata, IMAPS "trusted_proxies = 10.1.2.3/8\n", "t.conf:8: bad range "
	    "'10.1.2.3/8' in 'trusted_proxies' (expected IPv4 or IPv6 ranges such as "
	    "10.0.0.0/8 2001:db8::/32, separated by blanks)");
	bad(_metadata, IMAPS "trusted_proxies = lb.example.org\n", "t.conf:8: bad range "
	    "'lb.example.org' in 'trusted_proxies' (expected IPv4 or IPv6 ranges such as "
	    "10.0.0.0/8 2001:db8::/32, separated by blanks)");
	bad(_metadata, IMAPS "trusted_proxies =\n", "t.conf:8: bad value '' for "
	    "'trusted_proxies' (expected IPv4 or IPv6 ranges such as 10.0.0.0/8 "
	    "2001:db8::/32, separated by blanks)");
	bad(_metadata, IMAPS "proxy_timeout = 0\n", "t.conf:8: bad value '0' for "
	    "'proxy_timeout' (expected a duration such as 500ms, 30s, 5m or 1h, at most 168h)");
}

TEST_HARNESS_MAIN
