// SPDX-License-Identifier: GPL-2.0
/* libFuzzer target: the smtp pre-TLS dialogue (see fuzz_pretls.h). */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_pretls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fz_pretls(MK_PROTO_SUBMISSION, data, size);
}
