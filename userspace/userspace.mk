# userspace/: nkd (CoreEngine + NSMs) and nkctl. The layout of userspace/nkd/
# is in docs/nkd.md and docs/architecture.md:
#   userspace/nkd/                 main.c
#   userspace/nkd/core/            the CoreEngine, control socket, rings, loop
#   userspace/nkd/tenancy/         operator, budgets, identity, ports
#   userspace/nkd/nsm/             nsm.h, the NSM interface
#   userspace/nkd/nsm/kernel/      the kernel NSM
#   userspace/nkd/nsm/afxdp/       the afxdp NSM's adapter; its TCP/IP engine
#   userspace/nkd/nsm/shm/         the shm NSM: guest to guest inside nkd
#                                  in ustack/ is a library (ustack.mk)
# nkd includes its own headers by basename ("engine.h"), every folder above
# being on the include path, so basenames stay unique across these folders.

NKD_DIR := userspace/nkd
NKD_SRC_DIRS := $(NKD_DIR) $(NKD_DIR)/core $(NKD_DIR)/tenancy $(NKD_DIR)/nsm \
	$(NKD_DIR)/nsm/kernel $(NKD_DIR)/nsm/afxdp $(NKD_DIR)/nsm/shm
NKD_INC := $(addprefix -I,$(NKD_SRC_DIRS))
NKD_SRCS := $(wildcard $(addsuffix /*.c,$(NKD_SRC_DIRS)))
NKD_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(NKD_SRCS))
NKD_SAN_OBJS := $(patsubst %.c,$(BUILD)/san/%.o,$(NKD_SRCS))
# libsystemd: sd_notify readiness (core/notify.c).
NKD_LIBS := -luring -lpthread \
	$(shell pkg-config --libs libsystemd 2>/dev/null || echo -lsystemd)
$(NKD_OBJS) $(NKD_SAN_OBJS): NK_CFLAGS += $(NKD_INC)
# The afxdp NSM's adapter: nk_ustack (lwIP, libxdp) and the nk_steer maps API.
NKD_AFXDP_SRCS := $(wildcard $(NKD_DIR)/nsm/afxdp/*.c)
NKD_AFXDP_CFLAGS := -I$(USTACK_DIR) $(NK_STEER_MAPS_CFLAGS) $(LWIP_CFLAGS)
$(patsubst %.c,$(BUILD)/obj/%.o,$(NKD_AFXDP_SRCS)) \
$(patsubst %.c,$(BUILD)/san/%.o,$(NKD_AFXDP_SRCS)): NK_CFLAGS += $(NKD_AFXDP_CFLAGS)
NKD_AFXDP_OBJS := $(USTACK_LIB) $(NK_STEER_MAPS_LIB)
NKD_AFXDP_SAN_OBJS := $(USTACK_SAN_OBJS) $(NK_STEER_MAPS_SAN_LIB)
NKD_AFXDP_LIBS := $(USTACK_LDLIBS) -lelf -lz
NKCTL_SRCS := userspace/nkctl/nkctl.c
NKCTL_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(NKCTL_SRCS))
# nkctl reads nkd's JSON with json-c (Debian libjson-c-dev).
JSONC_CFLAGS := $(shell pkg-config --cflags json-c)
JSONC_LIBS := $(shell pkg-config --libs json-c)
$(NKCTL_OBJS): NK_CFLAGS += $(JSONC_CFLAGS)

$(BUILD)/nkd: $(NKD_OBJS) $(NKD_AFXDP_OBJS)
	$(msg) LINK $@
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(NKD_LIBS) $(NKD_AFXDP_LIBS)

# ASan+UBSan build of nkd, for hostile-input testing.
$(BUILD)/san/nkd: $(NKD_SAN_OBJS) $(NKD_AFXDP_SAN_OBJS)
	$(msg) LINK-SAN $@
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(SAN_FLAGS) -o $@ $^ $(NKD_LIBS) $(NKD_AFXDP_LIBS)

$(BUILD)/nkctl: $(NKCTL_OBJS)
	$(msg) LINK $@
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(JSONC_LIBS)

# The sanitizer nkd is part of "all": tests/integration/fault_hostile.sh runs it.
all: $(BUILD)/nkd $(BUILD)/nkctl $(BUILD)/san/nkd
nkd-san: $(BUILD)/san/nkd
.PHONY: nkd-san install-userspace

# Unit tests: tests/unit/test_NAME.c against these sources. Unit tests
# include nkd's headers by basename too.
$(BUILD)/obj/tests/unit/%.o $(BUILD)/san/tests/unit/%.o: NK_CFLAGS += $(NKD_INC)
UT_validate_SRCS := $(NKD_DIR)/core/validate.c $(NKD_DIR)/core/bufown.c
UT_config_SRCS := $(NKD_DIR)/core/config.c
UT_host_ring_SRCS := $(NKD_DIR)/core/host_ring.c $(NKD_DIR)/core/region.c
UT_bufown_SRCS := $(NKD_DIR)/core/bufown.c
UT_cmsg_SRCS := $(NKD_DIR)/core/cmsg.c
UT_recv_batch_SRCS := $(NKD_DIR)/nsm/kernel/recv_batch.c \
	$(NKD_DIR)/core/validate.c $(NKD_DIR)/core/bufown.c
UT_guest_ids_SRCS := $(NKD_DIR)/core/guest_ids.c
UT_rxback_SRCS := $(NKD_DIR)/core/rxback.c
UT_kn_accq_SRCS := $(NKD_DIR)/nsm/kernel/kn_accq.c
# The engine with a fake NSM (tests/unit/test_engine.c): everything of nkd
# but main, the control socket and the two real NSMs with their helpers
# (stubbed in the test).
UT_engine_SRCS := $(filter-out $(NKD_DIR)/main.c $(NKD_DIR)/core/ctl.c \
	$(NKD_DIR)/core/vm.c \
	$(NKD_DIR)/nsm/kernel/nsm_kernel.c $(NKD_AFXDP_SRCS),$(NKD_SRCS))
UT_engine_LIBS := $(NKD_LIBS)
UT_xlinger_SRCS := $(NKD_DIR)/nsm/afxdp/xlinger.c $(USTACK_DIR)/seqmod.c \
	$(USTACK_DIR)/pkt.c
$(BUILD)/obj/tests/unit/test_xlinger.o $(BUILD)/san/tests/unit/test_xlinger.o: \
	NK_CFLAGS += $(NKD_AFXDP_CFLAGS)

# Explicit links: in the generic rule of tests/tests.mk the '%' inside
# patsubst is replaced by the stem, so the sources never become objects.
define NKD_UNIT_TEST
$$(BUILD)/tests/$(1): $$(BUILD)/obj/tests/unit/test_$(1).o \
		$$(patsubst %.c,$$(BUILD)/obj/%.o,$$(UT_$(1)_SRCS))
	$$(msg) LINK $$@
	@mkdir -p $$(dir $$@)
	$$(Q)$$(CC) $$(CFLAGS) -o $$@ $$^ -lcmocka $$(UT_$(1)_LIBS)

$$(BUILD)/tests/san/$(1): $$(BUILD)/san/tests/unit/test_$(1).o \
		$$(patsubst %.c,$$(BUILD)/san/%.o,$$(UT_$(1)_SRCS))
	$$(msg) LINK-SAN $$@
	@mkdir -p $$(dir $$@)
	$$(Q)$$(CC) $$(SAN_FLAGS) -o $$@ $$^ -lcmocka $$(UT_$(1)_LIBS)
endef
$(foreach t,validate config host_ring bufown guest_ids engine xlinger recv_batch rxback,$(eval $(call NKD_UNIT_TEST,$(t))))

install-userspace: $(BUILD)/nkd $(BUILD)/nkctl
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(PREFIX)/bin \
		$(DESTDIR)$(MANDIR)/man8
	install -m 0755 $(BUILD)/nkd $(DESTDIR)$(SBINDIR)/nkd
	install -m 0755 $(BUILD)/nkctl $(DESTDIR)$(PREFIX)/bin/nkctl
	install -m 0644 docs/man/nkd.8 docs/man/nkctl.8 \
		$(DESTDIR)$(MANDIR)/man8/

install: install-userspace
