# afxdp NSM core: the userspace TCP/IP engine (lwIP raw API) and its L2
# backends (AF_XDP, AF_PACKET, TAP), next to the NSM's adapter in
# userspace/nkd/nsm/afxdp/. nkd links $(USTACK_LIB) with $(USTACK_LDLIBS)
# (userspace.mk, which is included after this fragment).
#   build/lib/libnk_ustack.a      engine + backends
#   build/tools/ustack_echo       test driver (TCP echo, HTTP, UDP echo, client)

USTACK_DIR := userspace/nkd/nsm/afxdp/ustack
USTACK_SRCS := $(USTACK_DIR)/pkt.c $(USTACK_DIR)/segq.c $(USTACK_DIR)/l2.c \
	$(USTACK_DIR)/l2_tap.c $(USTACK_DIR)/l2_packet.c \
	$(USTACK_DIR)/l2_afxdp.c $(USTACK_DIR)/seqmod.c $(USTACK_DIR)/ackq.c \
	$(USTACK_DIR)/ustack.c $(USTACK_DIR)/lwip_csum.c
USTACK_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(USTACK_SRCS))
USTACK_LIB := $(BUILD)/lib/libnk_ustack.a
# Debian's lwIP ships lwip.pc (pkg-config name "lwip", library liblwip).
LWIP_CFLAGS := $(shell pkg-config --cflags lwip 2>/dev/null || echo -I/usr/include/lwip)
LWIP_LIBS := $(shell pkg-config --libs lwip 2>/dev/null || echo -llwip)
XDP_LIBS := $(shell pkg-config --libs libxdp libbpf 2>/dev/null || echo -lxdp -lbpf)
USTACK_LDLIBS := $(LWIP_LIBS) $(XDP_LIBS)

# lwIP headers only for our objects; never our own lwipopts.h.
$(BUILD)/obj/$(USTACK_DIR)/%.o $(BUILD)/san/$(USTACK_DIR)/%.o: \
	NK_CFLAGS += $(LWIP_CFLAGS)
$(BUILD)/obj/tests/tools/ustack_%.o $(BUILD)/obj/tests/unit/test_ustack_%.o \
$(BUILD)/san/tests/unit/test_ustack_%.o: NK_CFLAGS += -I$(USTACK_DIR)

$(USTACK_LIB): $(USTACK_OBJS)
	$(msg) AR $@
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/tools/ustack_echo: $(BUILD)/obj/tests/tools/ustack_echo.o $(USTACK_LIB)
	$(msg) LINK $@
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(USTACK_LDLIBS)

# The same driver with ASan/UBSan on our code (lwIP itself is not
# instrumented): `make ustack-san`, then run the integration tests with
# NK_USTACK_DRV=build/tools/san/ustack_echo.
USTACK_SAN_OBJS := $(patsubst %.c,$(BUILD)/san/%.o,$(USTACK_SRCS))
$(BUILD)/san/tests/tools/ustack_%.o: NK_CFLAGS += -I$(USTACK_DIR)
$(BUILD)/tools/san/ustack_echo: $(BUILD)/san/tests/tools/ustack_echo.o \
		$(USTACK_SAN_OBJS)
	$(msg) LINK-SAN $@
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(SAN_FLAGS) -o $@ $^ $(USTACK_LDLIBS)
ustack-san: $(BUILD)/tools/san/ustack_echo
.PHONY: ustack-san

# Unit tests (tests/tests.mk convention).
UT_ustack_pkt_SRCS := $(USTACK_DIR)/pkt.c
UT_ustack_segq_SRCS := $(USTACK_DIR)/segq.c
UT_ustack_seqmod_SRCS := $(USTACK_DIR)/seqmod.c $(USTACK_DIR)/pkt.c
UT_ustack_ackq_SRCS := $(USTACK_DIR)/ackq.c

ustack: $(USTACK_LIB) $(BUILD)/tools/ustack_echo \
	$(BUILD)/tests/ustack_pkt $(BUILD)/tests/ustack_segq \
	$(BUILD)/tests/ustack_seqmod $(BUILD)/tests/ustack_ackq
all: ustack
.PHONY: ustack
