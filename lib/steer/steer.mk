# lib/steer/: the nk_steer maps API (nk_steer_maps.[ch]), the control plane
# over the maps nk-loader pins (docs/steering.md). Built once, as a static
# library that nk-loader (loader.mk), nkd (userspace.mk) and the BPF tests
# link; the sanitizer copy goes into build/san/nkd.
#   build/lib/libnk_steer_maps.a
#   build/san/lib/libnk_steer_maps.a

STEER_DIR := lib/steer
# Users include "nk_steer_maps.h", which includes bpf/nk_steer_shared.h.
NK_STEER_MAPS_CFLAGS := -I$(STEER_DIR) -Ibpf
NK_STEER_MAPS_LIB := $(BUILD)/lib/libnk_steer_maps.a
NK_STEER_MAPS_SAN_LIB := $(BUILD)/san/lib/libnk_steer_maps.a
NK_STEER_MAPS_OBJ := $(BUILD)/obj/$(STEER_DIR)/nk_steer_maps.o
NK_STEER_MAPS_SAN_OBJ := $(BUILD)/san/$(STEER_DIR)/nk_steer_maps.o

$(NK_STEER_MAPS_OBJ) $(NK_STEER_MAPS_SAN_OBJ): NK_CFLAGS += $(NK_STEER_MAPS_CFLAGS)
$(NK_STEER_MAPS_OBJ) $(NK_STEER_MAPS_SAN_OBJ): bpf/nk_steer_shared.h

$(NK_STEER_MAPS_LIB): $(NK_STEER_MAPS_OBJ)
	$(msg) AR $@
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(NK_STEER_MAPS_SAN_LIB): $(NK_STEER_MAPS_SAN_OBJ)
	$(msg) AR $@
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && ar rcs $@ $^

steer-maps: $(NK_STEER_MAPS_LIB)
all: steer-maps
.PHONY: steer-maps
