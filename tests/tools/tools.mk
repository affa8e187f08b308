# Test helper programs (tests/tools/*.c), one program per file, built into
# $(BUILD)/tools/. Used by tests/integration, tests/bench and scripts/demo.sh.

TOOL_NAMES := nk_stream nk_rawguest
TOOL_BINS := $(addprefix $(BUILD)/tools/,$(TOOL_NAMES))

$(BUILD)/tools/%: $(BUILD)/obj/tests/tools/%.o
	$(msg) LINK $@
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -o $@ $^

tools: $(TOOL_BINS)
all: tools
.PHONY: tools
