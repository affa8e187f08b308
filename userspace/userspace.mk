# userspace/: nkd (CoreEngine + NSMs) and nkctl. See docs/nkd.md.

NKD_SRCS := $(wildcard userspace/nkd/*.c)
NKD_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(NKD_SRCS))
NKD_SAN_OBJS := $(patsubst %.c,$(BUILD)/san/%.o,$(NKD_SRCS))
NKD_LIBS := -luring -lpthread
# The afxdp NSM: nk_ustack (lwIP, libxdp) and the nk_steer maps API.
NKD_AFXDP_CFLAGS := -I$(USTACK_DIR) -Iloader -Ibpf $(LWIP_CFLAGS)
$(BUILD)/obj/userspace/nkd/nsm_afxdp.o $(BUILD)/san/userspace/nkd/nsm_afxdp.o \
$(BUILD)/obj/userspace/nkd/xlinger.o $(BUILD)/san/userspace/nkd/xlinger.o: \
	NK_CFLAGS += $(NKD_AFXDP_CFLAGS)
$(BUILD)/san/loader/%.o: NK_CFLAGS += -I$(BUILD) -Ibpf -Iloader
NKD_AFXDP_OBJS := $(USTACK_LIB) $(NK_STEER_MAPS_OBJ)
NKD_AFXDP_SAN_OBJS := $(USTACK_SAN_OBJS) $(BUILD)/san/loader/nk_steer_maps.o
NKD_AFXDP_LIBS := $(USTACK_LDLIBS) -lelf -lz
NKCTL_SRCS := userspace/nkctl/nkctl.c
NKCTL_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(NKCTL_SRCS))

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
	$(Q)$(CC) $(CFLAGS) -o $@ $^

# The sanitizer nkd is part of "all": tests/integration/fault_hostile.sh runs it.
all: $(BUILD)/nkd $(BUILD)/nkctl $(BUILD)/san/nkd
nkd-san: $(BUILD)/san/nkd
.PHONY: nkd-san install-userspace

# Unit tests: tests/unit/test_NAME.c against these sources.
UT_validate_SRCS := userspace/nkd/validate.c userspace/nkd/bufown.c
UT_config_SRCS := userspace/nkd/config.c
UT_host_ring_SRCS := userspace/nkd/host_ring.c userspace/nkd/region.c
UT_bufown_SRCS := userspace/nkd/bufown.c
UT_cmsg_SRCS := userspace/nkd/cmsg.c
UT_guest_ids_SRCS := userspace/nkd/guest_ids.c
# The engine with a fake NSM (tests/unit/test_engine.c): everything of nkd
# but main, the control socket and the two real NSMs with their helpers
# (stubbed in the test).
UT_engine_SRCS := $(filter-out userspace/nkd/main.c userspace/nkd/ctl.c \
	userspace/nkd/nsm_kernel.c userspace/nkd/nsm_afxdp.c \
	userspace/nkd/xlinger.c,$(NKD_SRCS))
UT_engine_LIBS := $(NKD_LIBS)
UT_xlinger_SRCS := userspace/nkd/xlinger.c $(USTACK_DIR)/seqmod.c \
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
$(foreach t,validate config host_ring bufown guest_ids engine xlinger,$(eval $(call NKD_UNIT_TEST,$(t))))

install-userspace: $(BUILD)/nkd $(BUILD)/nkctl
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin \
		$(DESTDIR)$(PREFIX)/share/man/man8
	install -m 0755 $(BUILD)/nkd $(DESTDIR)$(PREFIX)/sbin/nkd
	install -m 0755 $(BUILD)/nkctl $(DESTDIR)$(PREFIX)/bin/nkctl
	install -m 0644 docs/man/nkd.8 docs/man/nkctl.8 \
		$(DESTDIR)$(PREFIX)/share/man/man8/

install: install-userspace
