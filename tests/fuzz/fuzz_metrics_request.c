// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target for the metrics endpoint's request-line parser: any
 * bytes give one of its documented verdicts, and a complete line never
 * depends on what follows it.
 */
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	int v = mk_metrics_parse_request((const char *)data, size);
	const unsigned char *nl = memchr(data, '\n', size);

	if (v != 0 && v != 200 && v != 400 && v != 404 && v != 405)
		abort();
	if (!nl && v != 0 && v != 400)
		abort();
	if (nl && mk_metrics_parse_request((const char *)data, (size_t)(nl - data) + 1) != v)
		abort();
	return 0;
}
