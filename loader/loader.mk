# loader/: nk-loader. It includes the bpftool skeleton and the shared header
# from bpf/ (bpf.mk) and links the nk_steer maps API of lib/steer/ (steer.mk),
# which nkd links too.

NK_LOADER := $(BUILD)/nk-loader
LOADER_OBJS := $(BUILD)/obj/loader/nk_loader.o

# The skeleton lives in $(BUILD); the shared header in bpf/.
$(BUILD)/obj/loader/%.o: NK_CFLAGS += -I$(BUILD) $(NK_STEER_MAPS_CFLAGS)
$(BUILD)/obj/loader/nk_loader.o: $(NK_STEER_SKEL)
$(LOADER_OBJS): bpf/nk_steer_shared.h

$(NK_LOADER): $(LOADER_OBJS) $(NK_STEER_MAPS_LIB)
	$(msg) LINK $@
	$(Q)$(CC) $(CFLAGS) -o $@ $^ -lbpf -lelf -lz

loader: $(NK_LOADER)
all: loader

# BPF tests (root): tests/bpf/NAME.c -> $(BUILD)/tests-bpf/NAME, run by
# tests/integration/steer_*.sh and loader_*.sh.
BPF_TEST_NAMES := $(patsubst tests/bpf/%.c,%,$(wildcard tests/bpf/*.c))
BPF_TESTS := $(addprefix $(BUILD)/tests-bpf/,$(BPF_TEST_NAMES))
$(BUILD)/obj/tests/bpf/%.o: NK_CFLAGS += -I$(BUILD) $(NK_STEER_MAPS_CFLAGS)
$(patsubst %,$(BUILD)/obj/tests/bpf/%.o,$(BPF_TEST_NAMES)): $(NK_STEER_SKEL) \
	bpf/nk_steer_shared.h

$(BUILD)/tests-bpf/%: $(BUILD)/obj/tests/bpf/%.o $(NK_STEER_MAPS_LIB)
	$(msg) LINK $@
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -o $@ $^ -lbpf -lelf -lz

bpf-tests: $(BPF_TESTS)
all: bpf-tests
.PHONY: bpf-tests

SBINDIR ?= $(PREFIX)/sbin
MANDIR ?= $(PREFIX)/share/man
NK_LIBDIR ?= $(PREFIX)/lib/netkernel

install-loader: $(NK_LOADER) $(NK_STEER_OBJ)
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(NK_LIBDIR)
	install -m 0755 $(NK_LOADER) $(DESTDIR)$(SBINDIR)/nk-loader
	install -m 0644 docs/man/nk-loader.8 $(DESTDIR)$(MANDIR)/man8/nk-loader.8
	install -m 0644 $(NK_STEER_OBJ) $(DESTDIR)$(NK_LIBDIR)/nk_steer.bpf.o

install: install-loader
.PHONY: loader install-loader
