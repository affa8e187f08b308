# Test helper programs (tests/tools/*.c), one program per file, built into
# $(BUILD)/tools/. Used by tests/integration, tests/bench and scripts/demo.sh.

TOOL_NAMES := nk_stream nk_rawguest nk_semantics nk_eintr_race
TOOL_BINS := $(addprefix $(BUILD)/tools/,$(TOOL_NAMES))

$(BUILD)/tools/%: $(BUILD)/obj/tests/tools/%.o
	$(msg) LINK $@
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -o $@ $^

# nk_semantics must import the fortified and 64-bit variants glibc redirects
# to (__recv_chk, __read_chk, fcntl64, sendfile64): the shim has to catch them.
$(BUILD)/obj/tests/tools/nk_semantics.o: CFLAGS += -O2 -D_FILE_OFFSET_BITS=64 -D_FORTIFY_SOURCE=2

tools: $(TOOL_BINS)
all: tools
.PHONY: tools
