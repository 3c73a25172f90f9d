// SPDX-License-Identifier: GPL-2.0
/*
 * The counters behind the metrics, and their exposition (Prometheus text
 * format 0.0.4). Plain counters and gauges are fixed arrays of atomics,
 * indexed by listener; the counters labelled by what a session negotiated
 * (version and cipher) or by why a handshake failed are few distinct label
 * sets in practice, so they are a short list under one mutex, searched
 * linearly and bounded in length.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ktls.h"
#include "metrics.h"

#define MK_LABELLED_MAX 256	/* distinct (listener, labels) sets kept */
#define MK_LABEL_MAX 64

static const char *const mk_state_names[MK_METRICS_NSTATES] = {
	"pretls", "handshake", "connecting", "relay", "closing", "proxy",
};

struct mk_labelled {
	int ml_listener;
	char ml_a[MK_LABEL_MAX], ml_b[MK_LABEL_MAX];
	uint64_t ml_count;
};

static struct {
	atomic_uint_fast64_t m_count[MK_MAX_LISTENERS][MK_M_NCOUNTERS];
	atomic_int m_state[MK_MAX_LISTENERS][MK_METRICS_NSTATES];
	atomic_int m_tls_kernel, m_tls_user;		/* sessions open now */
	atomic_int m_runtimes;				/* configurations in memory */

	pthread_mutex_t m_lock;
	char m_listener[MK_MAX_LISTENERS][MK_NAME_MAX];	/* m_lock */
	size_t m_nlisteners;				/* m_lock */
	struct mk_labelled m_sessions[MK_LABELLED_MAX];	/* m_lock: version, cipher */
	size_t m_nsessions;				/* m_lock */
	struct mk_labelled m_failures[MK_LABELLED_MAX];	/* m_lock: reason */
	size_t m_nfailures;				/* m_lock */
	struct mk_labelled m_groups[MK_LABELLED_MAX];	/* m_lock: key-exchange group */
	size_t m_ngroups;				/* m_lock */
	uint64_t m_dropped;				/* m_lock: label sets not kept */
} mk_m = { .m_lock = PTHREAD_MUTEX_INITIALIZER };

static bool li_ok(int li)
{
	return li >= 0 && li < MK_MAX_LISTENERS;
}

/**
 * mk_metrics_set_listeners() - the listener names, for the labels
 * @cfg: the configuration in force (a reload keeps the listeners)
 */
void mk_metrics_set_listeners(const struct mk_config *cfg)
{
	size_t i;

	pthread_mutex_lock(&mk_m.m_lock);
	for (i = 0; i < cfg->cf_nlisteners && i < MK_MAX_LISTENERS; i++)
		snprintf(mk_m.m_listener[i], sizeof(mk_m.m_listener[i]), "%s",
			 cfg->cf_listeners[i].lc_name);
	mk_m.m_nlisteners = i;
	pthread_mutex_unlock(&mk_m.m_lock);
}

/**
 * mk_metrics_add() - count @n events of kind @m on listener @li
 * @li: listener index
 * @m:  the counter
 * @n:  how many
 */
void mk_metrics_add(int li, enum mk_metric m, uint64_t n)
{
	if (li_ok(li) && m < MK_M_NCOUNTERS)
		atomic_fetch_add_explicit(&mk_m.m_count[li][m], n, memory_order_relaxed);
}

/**
 * mk_metrics_state() - a connection changed state
 * @li:   listener index
 * @from: the state it leaves, or -1 (new connection)
 * @to:   the state it enters, or -1 (freed)
 */
void mk_metrics_state(int li, int from, int to)
{
	if (!li_ok(li))
		return;
	if (from >= 0 && from < MK_METRICS_NSTATES)
		atomic_fetch_sub_explicit(&mk_m.m_state[li][from], 1, memory_order_relaxed);
	if (to >= 0 && to < MK_METRICS_NSTATES)
		atomic_fetch_add_explicit(&mk_m.m_state[li][to], 1, memory_order_relaxed);
}

/* Count one more for (@li, @a, @b) in @tab; the caller holds m_lock. */
static void labelled_inc(struct mk_labelled *tab, size_t *n, int li, const char *a,
			 const char *b)
{
	size_t i;

	for (i = 0; i < *n; i++) {
		if (tab[i].ml_listener == li && !strcmp(tab[i].ml_a, a) &&
		    !strcmp(tab[i].ml_b, b)) {
			tab[i].ml_count++;
			return;
		}
	}
	if (*n == MK_LABELLED_MAX) {
		mk_m.m_dropped++;
		return;
	}
	tab[*n].ml_listener = li;
	snprintf(tab[*n].ml_a, sizeof(tab[*n].ml_a), "%s", a);
	snprintf(tab[*n].ml_b, sizeof(tab[*n].ml_b), "%s", b);
	tab[(*n)++].ml_count = 1;
}

/**
 * mk_metrics_tls_up() - TLS was established
 * @li:      listener index
 * @version: "TLSv1.3"
 * @cipher:  IANA name
 * @group:   key-exchange group ("X25519MLKEM768"), "" for none
 * @ktls:    the kernel has the records both ways
 */
void mk_metrics_tls_up(int li, const char *version, const char *cipher, const char *group,
		       bool ktls)
{
	mk_metrics_add(li, MK_M_HANDSHAKES, 1);
	atomic_fetch_add_explicit(ktls ? &mk_m.m_tls_kernel : &mk_m.m_tls_user, 1,
				  memory_order_relaxed);
	pthread_mutex_lock(&mk_m.m_lock);
	labelled_inc(mk_m.m_sessions, &mk_m.m_nsessions, li, version, cipher);
	labelled_inc(mk_m.m_groups, &mk_m.m_ngroups, li, group[0] ? group : "none", "");
	pthread_mutex_unlock(&mk_m.m_lock);
}

/**
 * mk_metrics_tls_down() - a connection counted by mk_metrics_tls_up() ended
 * @ktls: as it was counted
 */
void mk_metrics_tls_down(bool ktls)
{
	atomic_fetch_sub_explicit(ktls ? &mk_m.m_tls_kernel : &mk_m.m_tls_user, 1,
				  memory_order_relaxed);
}

/**
 * mk_metrics_runtime() - a runtime (configuration, TLS contexts,
 * certificates, ticket keys) was built (@delta 1) or freed (-1)
 * @delta: 1 or -1
 */
void mk_metrics_runtime(int delta)
{
	atomic_fetch_add_explicit(&mk_m.m_runtimes, delta, memory_order_relaxed);
}

/**
 * mk_metrics_handshake_failed() - count a failed handshake
 * @li:     listener index
 * @reason: a token: OpenSSL's reason ("unsupported_protocol"), "timeout", ...
 */
void mk_metrics_handshake_failed(int li, const char *reason)
{
	pthread_mutex_lock(&mk_m.m_lock);
	labelled_inc(mk_m.m_failures, &mk_m.m_nfailures, li, reason, "");
	pthread_mutex_unlock(&mk_m.m_lock);
}

/* --- exposition ------------------------------------------------------------ */

struct mk_text {
	char *t_buf;
	size_t t_len, t_cap;
	bool t_oom;
};

static void text_printf(struct mk_text *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void text_printf(struct mk_text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		if (t->t_oom)
			return;
		va_start(ap, fmt);
		n = vsnprintf(t->t_buf + t->t_len, t->t_cap - t->t_len, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < t->t_cap - t->t_len) {
			t->t_len += (size_t)n;
			return;
		}
		char *nb = realloc(t->t_buf, t->t_cap * 2);

		if (!nb) {
			t->t_oom = true;
			return;
		}
		t->t_buf = nb;
		t->t_cap *= 2;
	}
}

/* A label value as the text format wants it: \, " and newline escaped. */
static const char *label_value(const char *in, char *out, size_t len)
{
	size_t o = 0;

	for (; *in && o + 3 < len; in++) {
		if (*in == '\\' || *in == '"' || *in == '\n') {
			out[o++] = '\\';
			out[o++] = *in == '\n' ? 'n' : *in;
		} else {
			out[o++] = *in;
		}
	}
	out[o] = '\0';
	return out;
}

static void family(struct mk_text *t, const char *name, const char *type, const char *help)
{
	text_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A counter family whose samples split each listener's count in two. */
static void render_pair(struct mk_text *t, size_t nl, const char *name, const char *help,
			const char *label, const char *v1, enum mk_metric m1, const char *v2,
			enum mk_metric m2)
{
	char ln[2 * MK_NAME_MAX];
	size_t i;

	family(t, name, "counter", help);
	for (i = 0; i < nl; i++) {
		unsigned long long n1 = atomic_load(&mk_m.m_count[i][m1]);
		unsigned long long n2 = atomic_load(&mk_m.m_count[i][m2]);

		label_value(mk_m.m_listener[i], ln, sizeof(ln));
		text_printf(t, "%s{listener=\"%s\",%s=\"%s\"} %llu\n", name, ln, label, v1, n1);
		text_printf(t, "%s{listener=\"%s\",%s=\"%s\"} %llu\n", name, ln, label, v2, n2);
	}
}

/* The per-listener counters, one family each. */
static void render_counters(struct mk_text *t, size_t nl)
{
	static const struct {
		enum mk_metric c_m;
		const char *c_name, *c_help, *c_extra;
	} counters[] = {
		{ MK_M_ACCEPTED, "mailktls_connections_accepted_total",
		  "Client connections accepted.", "" },
		{ MK_M_HANDSHAKES, "mailktls_handshakes_total",
		  "TLS handshakes completed.", "" },
		{ MK_M_STARTTLS, "mailktls_starttls_upgrades_total",
		  "STARTTLS or STLS upgrades begun.", "" },
		{ MK_M_AUTH_REFUSED, "mailktls_cleartext_auth_refusals_total",
		  "Logins before TLS refused (RFC 8314 section 4.1).", "" },
		{ MK_M_PROXY_REFUSED, "mailktls_proxy_refused_total",
		  "Connections closed for their PROXY header (peer, content or timeout).", "" },
		{ MK_M_ACCEPT_PAUSES, "mailktls_accept_pauses_total",
		  "Times accept was paused for lack of descriptors or memory.", "" },
		{ MK_M_KEYUPDATE_RECEIVED, "mailktls_key_updates_received_total",
		  "TLS 1.3 KeyUpdates read from clients on kernel TLS.", "" },
		{ MK_M_KEYUPDATE_SENT, "mailktls_key_updates_sent_total",
		  "KeyUpdates sent on kernel TLS, answering update_requested.", "" },
		{ MK_M_KEYUPDATE_REFUSED, "mailktls_key_updates_refused_total",
		  "Connections closed for a KeyUpdate: kernel without rekey, rate limit, or "
		  "keys not taken.", "" },
	};
	char ln[2 * MK_NAME_MAX];
	size_t i, j;

	for (j = 0; j < sizeof(counters) / sizeof(counters[0]); j++) {
		family(t, counters[j].c_name, "counter", counters[j].c_help);
		for (i = 0; i < nl; i++) {
			unsigned long long n = atomic_load(&mk_m.m_count[i][counters[j].c_m]);

			text_printf(t, "%s{listener=\"%s\"} %llu\n", counters[j].c_name,
				    label_value(mk_m.m_listener[i], ln, sizeof(ln)), n);
		}
	}
	render_pair(t, nl, "mailktls_refused_total", "Connections refused before TLS, by reason.",
		    "reason", "max_connections", MK_M_REFUSED_MAX, "connection_ceiling",
		    MK_M_REFUSED_CEILING);
	render_pair(t, nl, "mailktls_bytes_total",
		    "Plaintext bytes relayed, counted when a connection closes.", "direction",
		    "from_client", MK_M_BYTES_IN, "to_client", MK_M_BYTES_OUT);
}

/* A table of labelled counts; @label_b is NULL for a table of one label. */
static void render_table(struct mk_text *t, const char *name, const char *help,
			 const struct mk_labelled *tab, size_t n, const char *label_a,
			 const char *label_b)
{
	char ln[2 * MK_NAME_MAX], a[2 * MK_LABEL_MAX], b[2 * MK_LABEL_MAX];
	size_t i;

	family(t, name, "counter", help);
	for (i = 0; i < n; i++) {
		text_printf(t, "%s{listener=\"%s\",%s=\"%s\"", name,
			    label_value(mk_m.m_listener[tab[i].ml_listener], ln, sizeof(ln)),
			    label_a, label_value(tab[i].ml_a, a, sizeof(a)));
		if (label_b)
			text_printf(t, ",%s=\"%s\"", label_b,
				    label_value(tab[i].ml_b, b, sizeof(b)));
		text_printf(t, "} %llu\n", (unsigned long long)tab[i].ml_count);
	}
}

static void render_labelled(struct mk_text *t)
{
	render_table(t, "mailktls_tls_sessions_total",
		     "TLS sessions established, by version and IANA cipher name.",
		     mk_m.m_sessions, mk_m.m_nsessions, "version", "cipher");
	render_table(t, "mailktls_tls_groups_total",
		     "TLS sessions established, by key-exchange group (none: resumed "
		     "without one).", mk_m.m_groups, mk_m.m_ngroups, "group", NULL);
	render_table(t, "mailktls_handshake_failures_total",
		     "TLS handshakes that failed, by reason.", mk_m.m_failures,
		     mk_m.m_nfailures, "reason", NULL);
	family(t, "mailktls_metrics_label_sets_dropped_total", "counter",
	       "Label sets not kept because the table was full.");
	text_printf(t, "mailktls_metrics_label_sets_dropped_total %llu\n",
		    (unsigned long long)mk_m.m_dropped);
}

/* The kernel's TLS counters (TlsCurrTxSw, TlsRxSw, TlsDecryptError, ...). */
static void render_tls_stat(struct mk_text *t)
{
	char name[64];
	unsigned long long v;
	FILE *f = fopen("/proc/net/tls_stat", "r");

	family(t, "mailktls_kernel_tls_stat", "gauge",
	       "The kernel's /proc/net/tls_stat (absent without kernel TLS).");
	if (!f)
		return;
	while (fscanf(f, "%63s %llu", name, &v) == 2)
		text_printf(t, "mailktls_kernel_tls_stat{counter=\"%s\"} %llu\n", name, v);
	fclose(f);
}

/**
 * mk_metrics_render() - the whole exposition, text format 0.0.4
 * @out: receives malloc()ed text, which the caller frees
 *
 * Return: its length, or -ENOMEM.
 */
long mk_metrics_render(char **out)
{
	struct mk_text t = { .t_cap = 8192 };
	char ln[2 * MK_NAME_MAX];
	size_t i, s, nl;

	t.t_buf = malloc(t.t_cap);
	if (!t.t_buf)
		return -ENOMEM;
	pthread_mutex_lock(&mk_m.m_lock);
	nl = mk_m.m_nlisteners;
	family(&t, "mailktls_connections", "gauge", "Connections open now, by listener and state.");
	for (i = 0; i < nl; i++)
		for (s = 0; s < MK_METRICS_NSTATES; s++)
			text_printf(&t, "mailktls_connections{listener=\"%s\",state=\"%s\"} %d\n",
				    label_value(mk_m.m_listener[i], ln, sizeof(ln)),
				    mk_state_names[s], atomic_load(&mk_m.m_state[i][s]));
	family(&t, "mailktls_tls_connections", "gauge",
	       "Established connections by where their TLS records are: kernel (kTLS, both "
	       "ways) or user space (OpenSSL).");
	text_printf(&t, "mailktls_tls_connections{records=\"kernel\"} %d\n"
		    "mailktls_tls_connections{records=\"user_space\"} %d\n",
		    atomic_load(&mk_m.m_tls_kernel), atomic_load(&mk_m.m_tls_user));
	family(&t, "mailktls_runtimes", "gauge",
	       "Configurations in memory with their TLS contexts: the one in force, plus each "
	       "older one that connections from before a reload still use.");
	text_printf(&t, "mailktls_runtimes %d\n", atomic_load(&mk_m.m_runtimes));
	render_counters(&t, nl);
	render_labelled(&t);
	pthread_mutex_unlock(&mk_m.m_lock);
	family(&t, "mailktls_ktls_rekey", "gauge",
	       "1 if the running kernel can rekey kernel TLS (TLS 1.3 KeyUpdate), probed at "
	       "start.");
	text_printf(&t, "mailktls_ktls_rekey %d\n", mk_ktls_can_rekey() ? 1 : 0);
	render_tls_stat(&t);
	if (t.t_oom) {
		free(t.t_buf);
		return -ENOMEM;
	}
	*out = t.t_buf;
	return (long)t.t_len;
}
