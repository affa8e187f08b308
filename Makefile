# netkernel top-level Makefile. Non-recursive: each directory contributes a
# fragment (*.mk) that adds its targets; everything is built under $(BUILD).
#   make            build everything into build/
#   make check      unit tests (normal + ASan/UBSan) and integration tests
#   make demo       end-to-end demo (root)
#   make bench      benchmark table, build/bench.json (root)
#   make install    honours DESTDIR and PREFIX (docs/packaging.md)
#   make deb        Debian packages in build/deb/ (debhelper)
#   V=1             show full commands; CC=clang to build with clang

CC ?= gcc
BUILD ?= build
PREFIX ?= /usr/local
DESTDIR ?=
V ?= 0

ifeq ($(V),1)
Q :=
msg := @true
else
Q := @
msg = @printf '  %-8s %s\n'
endif

WARN := -Wall -Wextra -Werror -Wshadow -Wno-missing-field-initializers
CFLAGS ?= -O2 -g
NK_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) -Iinclude -MMD -MP
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer \
	-fno-sanitize-recover=undefined

.DELETE_ON_ERROR:
.SUFFIXES:
.SECONDARY:
.PHONY: all check check-unit check-integration demo bench install deps clean \
	format

all:

# Object rule: build/obj/<path>.o from <path>.c; build/san/<path>.o for the
# sanitizer variant. PIC everywhere: the shim is a shared object.
$(BUILD)/obj/%.o: %.c
	$(msg) CC $<
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(NK_CFLAGS) $(CFLAGS) -fPIC -c -o $@ $<

$(BUILD)/san/%.o: %.c
	$(msg) CC-SAN $<
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(NK_CFLAGS) -O1 -g $(SAN_FLAGS) -fPIC -c -o $@ $<

# Sorted, so definitions come before their users: bpf/ before lib/steer/
# before loader/, userspace/nkd/nsm/afxdp/ustack/ before userspace/userspace.mk.
include $(sort $(wildcard */*.mk */*/*.mk */*/*/*.mk */*/*/*/*.mk \
	*/*/*/*/*/*.mk))

deps:
	@./scripts/install-deps.sh

check: deps all
	@./tests/run-all.sh

demo: deps all
	@./scripts/demo.sh

bench: deps all
	@./tests/bench/run.sh

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
