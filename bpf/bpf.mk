# bpf/: the XDP steering program. Pipeline (libbpf-bootstrap style):
#   /sys/kernel/btf/vmlinux --bpftool btf dump--> $(BUILD)/bpf/vmlinux.h
#   nk_steer.bpf.c --clang -g -O2 -target bpf--> $(BUILD)/bpf/nk_steer.tmp.bpf.o
#   --bpftool gen object--> $(BUILD)/bpf/nk_steer.bpf.o (static link step)
#   --bpftool gen skeleton--> $(BUILD)/nk_steer.skel.h
# Userspace objects that include the skeleton depend on it (loader.mk).

BPF_CLANG ?= clang
BPFTOOL ?= bpftool
VMLINUX_BTF ?= /sys/kernel/btf/vmlinux
BPF_ARCH := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')
BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_$(BPF_ARCH) \
	-Wall -Werror -I$(BUILD)/bpf -Ibpf

NK_STEER_OBJ := $(BUILD)/bpf/nk_steer.bpf.o
NK_STEER_SKEL := $(BUILD)/nk_steer.skel.h
NK_STEER_HDRS := bpf/nk_steer_shared.h bpf/nk_parse.h bpf/nk_maps.h

$(BUILD)/bpf/vmlinux.h:
	@mkdir -p $(dir $@)
	@test -r $(VMLINUX_BTF) || { echo "error: $(VMLINUX_BTF) not readable:" \
		"the kernel needs CONFIG_DEBUG_INFO_BTF=y (or set VMLINUX_BTF=<file>)" >&2; \
		exit 1; }
	$(msg) GEN $@
	$(Q)$(BPFTOOL) btf dump file $(VMLINUX_BTF) format c > $@

$(BUILD)/bpf/%.tmp.bpf.o: bpf/%.bpf.c $(NK_STEER_HDRS) $(BUILD)/bpf/vmlinux.h
	$(msg) BPF $<
	@mkdir -p $(dir $@)
	$(Q)$(BPF_CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/bpf/%.bpf.o: $(BUILD)/bpf/%.tmp.bpf.o
	$(msg) BPFLINK $@
	$(Q)$(BPFTOOL) gen object $@ $<

$(NK_STEER_SKEL): $(NK_STEER_OBJ)
	$(msg) SKEL $@
	$(Q)$(BPFTOOL) gen skeleton $< name nk_steer > $@

bpf: $(NK_STEER_SKEL)
all: bpf
.PHONY: bpf
