/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Configuration of mailktlsd: the INI file parsed into plain structs.
 *
 * The parser only checks syntax and values; whether a certificate can be
 * loaded and matches its key is checked when the TLS contexts are built
 * (tls_policy.c), which reports errors with the line numbers kept here.
 */
#ifndef MAILKTLS_CONFIG_H
#define MAILKTLS_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "cidr.h"

#define MK_NAME_MAX 64
#define MK_MAX_CERTS 4
#define MK_MAX_LISTENERS 64
#define MK_ERR_MAX 512
#define MK_HOSTNAME_MAX 256

enum mk_protocol { MK_PROTO_IMAP, MK_PROTO_POP3, MK_PROTO_SUBMISSION };
enum mk_tls_mode { MK_TLS_IMPLICIT, MK_TLS_STARTTLS };
enum mk_ktls_mode { MK_KTLS_AUTO, MK_KTLS_REQUIRE, MK_KTLS_OFF };
enum mk_log_target { MK_LOG_STDERR, MK_LOG_SYSLOG };
/* optional: a certificate that fails verification fails the handshake. */
enum mk_client_cert_mode { MK_CLIENT_CERT_NONE, MK_CLIENT_CERT_OPTIONAL, MK_CLIENT_CERT_REQUIRE };

/* An address from the file: TCP (v4/v6) or, for backends, a unix path. */
struct mk_sockaddr {
	struct sockaddr_storage sa_storage;
	socklen_t sa_len;
	char sa_text[PATH_MAX + 8];	/* as written, for logs */
};

struct mk_certpair {
	char cp_cert[PATH_MAX];
	char cp_key[PATH_MAX];
	int cp_line;			/* line of the certificate key */
};

/* Key-exchange groups in OpenSSL's list syntax; "" keeps OpenSSL's default. */
#define MK_GROUPS_MAX 512
struct mk_groups_cfg {
	char gc_list[MK_GROUPS_MAX];
	int gc_line;			/* for "unknown group" from tls_policy.c */
};

/* A file named by a key, with the key's line for messages about its content. */
struct mk_path_cfg {
	char pc_path[PATH_MAX];		/* "" when the key is not set */
	int pc_line;
};

struct mk_listener_cfg {
	char lc_name[MK_NAME_MAX];
	int lc_line;			/* line of the [listener NAME] header */
	struct mk_sockaddr lc_listen;
	enum mk_protocol lc_protocol;
	enum mk_tls_mode lc_tls;
	struct mk_sockaddr lc_backend;
	bool lc_proxy_v2;
	unsigned int lc_proxy_tlvs;		/* PP2_SEND_* the header may carry */
	unsigned int lc_proxy_header_max;	/* bytes; TLVs are left out to fit */
	/* A load balancer in front: the client's address from its PROXY v2 header. */
	bool lc_accept_proxy;
	struct mk_cidrs lc_trusted_proxies;	/* who may send that header */
	unsigned int lc_proxy_timeout_ms;	/* for the whole header */
	struct mk_certpair lc_certs[MK_MAX_CERTS];
	int lc_ncerts;
	int lc_min_version;		/* TLS1_2_VERSION or TLS1_3_VERSION */
	struct mk_groups_cfg lc_groups;
	bool lc_alpn_strict;
	struct mk_path_cfg lc_ticket_keys;	/* "": per-process ticket keys */
	struct mk_path_cfg lc_client_ca;
	enum mk_client_cert_mode lc_client_cert;
	unsigned int lc_handshake_timeout_ms;
	unsigned int lc_idle_timeout_ms;
	unsigned int lc_max_connections;
	/* STARTTLS listeners only: the cleartext dialogue before TLS. */
	char lc_hostname[MK_HOSTNAME_MAX];	/* greeting/EHLO name */
	unsigned int lc_pretls_timeout_ms;
	unsigned int lc_pretls_max_commands;
	unsigned int lc_max_auth_refusals;	/* 0: never close for it */
};

struct mk_config {
	char cf_path[PATH_MAX];
	unsigned int cf_workers;	/* 0 in the file means one per core */
	enum mk_log_target cf_log;
	char cf_query_socket[PATH_MAX];	/* "" disables the query socket */
	enum mk_ktls_mode cf_ktls;
	struct mk_sockaddr cf_metrics_listen;	/* sa_len 0: no metrics endpoint */
	bool cf_key_process;		/* private keys in a process of their own */
	unsigned int cf_key_processes;	/* how many; 0 (auto): one per core */
	struct mk_listener_cfg *cf_listeners;
	size_t cf_nlisteners;
};

/**
 * mk_config_load() - parse an INI configuration file
 * @path:   file to read
 * @out:    on success, a newly allocated config (free with mk_config_free())
 * @err:    on failure, "FILE:LINE: message" (or "FILE: message")
 * @errlen: size of @err
 *
 * Return: 0 on success, -EINVAL on a syntax or value error, or a negative
 * errno when the file cannot be read.
 */
int mk_config_load(const char *path, struct mk_config **out, char *err, size_t errlen);

/**
 * mk_config_parse_buffer() - parse configuration text already in memory
 * @name:   file name used in messages
 * @text:   the text; need not be NUL-terminated
 * @len:    its length
 * @out, @err, @errlen: as for mk_config_load()
 *
 * Used by mk_config_load(), the unit tests and the fuzz target.
 *
 * Return: 0 on success, -EINVAL on error, -ENOMEM.
 */
int mk_config_parse_buffer(const char *name, const char *text, size_t len,
			   struct mk_config **out, char *err, size_t errlen);

void mk_config_free(struct mk_config *cfg);

const char *mk_protocol_name(enum mk_protocol p);
const char *mk_config_key_name(size_t i);

#endif
