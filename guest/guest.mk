# Guest side: libnkshim.so (the LD_PRELOAD socket shim), nkrun and
# nk-vmagent.
#   build/libnkshim.so   exports only the interposed libc symbols
#   build/nkrun          runs a program as a guest
#   build/nk-vmagent     the agent inside a VM guest (docs/vm.md)
# Unit tests: tests/unit/test_fdtable.c (fd table), test_shim_*.c.

SHIM_DIR := guest/shim
SHIM_SRCS := $(SHIM_DIR)/real.c $(SHIM_DIR)/fdtable.c $(SHIM_DIR)/conn.c \
	$(SHIM_DIR)/sock.c $(SHIM_DIR)/intercept.c $(SHIM_DIR)/proc.c \
	$(SHIM_DIR)/resolve.c $(SHIM_DIR)/cmsg.c $(SHIM_DIR)/rxbatch.c \
	$(SHIM_DIR)/dnsmap.c $(SHIM_DIR)/rawsys.c \
	$(SHIM_DIR)/refused.c $(SHIM_DIR)/signals.c \
	$(SHIM_DIR)/reattach.c $(SHIM_DIR)/bufpool.c $(SHIM_DIR)/waiter.c \
	$(SHIM_DIR)/submit.c $(SHIM_DIR)/ctlsock.c $(SHIM_DIR)/giveback.c
SHIM_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(SHIM_SRCS))
SHIM_MAP := guest/libnkshim.map

# Hidden by default: only what the version script names is exported.
$(SHIM_OBJS): NK_CFLAGS += -fvisibility=hidden

$(BUILD)/libnkshim.so: $(SHIM_OBJS) $(SHIM_MAP)
	$(msg) LINK $@
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -shared -Wl,--version-script=$(SHIM_MAP) \
		-Wl,-z,defs -Wl,-z,now -o $@ $(SHIM_OBJS) -ldl -lpthread

$(BUILD)/nkrun: $(BUILD)/obj/guest/nkrun.o
	$(msg) LINK $@
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -o $@ $^

# The agent inside a VM guest (docs/vm.md "Transport").
$(BUILD)/nk-vmagent: $(BUILD)/obj/guest/vmagent/nk-vmagent.o
	$(msg) LINK $@
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -o $@ $^

UT_fdtable_SRCS := $(SHIM_DIR)/fdtable.c
UT_fdtable_LIBS := -lpthread

# Explicit links for our tests: the generic rule in tests/tests.mk hands
# the .c files to the linker unchanged (the % of its patsubst is replaced
# by the stem under secondary expansion), which compiles them without
# -Iinclude.
$(BUILD)/tests/fdtable: $(BUILD)/obj/tests/unit/test_fdtable.o \
		$(BUILD)/obj/$(SHIM_DIR)/fdtable.o
	$(msg) LINK $@
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -o $@ $^ -lcmocka $(UT_fdtable_LIBS)

$(BUILD)/tests/san/fdtable: $(BUILD)/san/tests/unit/test_fdtable.o \
		$(BUILD)/san/$(SHIM_DIR)/fdtable.o
	$(msg) LINK-SAN $@
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(SAN_FLAGS) -o $@ $^ -lcmocka $(UT_fdtable_LIBS)

guest: $(BUILD)/libnkshim.so $(BUILD)/nkrun $(BUILD)/nk-vmagent
all: guest
.PHONY: guest install-guest

install-guest: $(BUILD)/libnkshim.so $(BUILD)/nkrun $(BUILD)/nk-vmagent
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/netkernel \
		$(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(GUEST_DOCDIR)
	install -m 0755 $(BUILD)/nkrun $(DESTDIR)$(PREFIX)/bin/nkrun
	install -m 0755 $(BUILD)/nk-vmagent $(DESTDIR)$(PREFIX)/bin/nk-vmagent
	install -m 0644 $(BUILD)/libnkshim.so \
		$(DESTDIR)$(PREFIX)/lib/netkernel/libnkshim.so
	install -m 0644 docs/man/nkrun.1 $(DESTDIR)$(PREFIX)/share/man/man1/nkrun.1
	install -m 0644 docs/man/nk-vmagent.1 \
		$(DESTDIR)$(PREFIX)/share/man/man1/nk-vmagent.1
	install -m 0644 docs/shim.md $(DESTDIR)$(GUEST_DOCDIR)/shim.md
install: install-guest
