# Unit tests (cmocka). Convention: tests/unit/test_NAME.c is one test
# program; the component that owns the code under test defines
#   UT_NAME_SRCS := path/to/a.c path/to/b.c
# in its own fragment, and UT_NAME_LIBS for extra libraries. Every test is
# built twice: build/tests/NAME (normal) and build/tests/san/NAME (ASan+UBSan).

UNIT_NAMES := $(patsubst tests/unit/test_%.c,%,$(wildcard tests/unit/test_*.c))
UNIT_BINS := $(addprefix $(BUILD)/tests/,$(UNIT_NAMES))
UNIT_SAN_BINS := $(addprefix $(BUILD)/tests/san/,$(UNIT_NAMES))

.SECONDEXPANSION:
$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/test_%.o \
		$$(addprefix $(BUILD)/obj/,$$(addsuffix .o,$$(basename $$(UT_$$*_SRCS))))
	$(msg) LINK $@
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -o $@ $^ -lcmocka $(UT_$*_LIBS)

$(BUILD)/tests/san/%: $(BUILD)/san/tests/unit/test_%.o \
		$$(addprefix $(BUILD)/san/,$$(addsuffix .o,$$(basename $$(UT_$$*_SRCS))))
	$(msg) LINK-SAN $@
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(SAN_FLAGS) -o $@ $^ -lcmocka $(UT_$*_LIBS)

unit-tests: $(UNIT_BINS) $(UNIT_SAN_BINS)
all: unit-tests
.PHONY: unit-tests

# The unit tests alone (both builds), as any user: no root, no namespace.
check-unit: unit-tests
	@./tests/run-all.sh unit/
