/* SPDX-License-Identifier: MIT */
/*
 * VM guests (docs/vm.md "Transport"): for each guest with vm_channel=,
 * nkd owns the file shared with the VM (vm_region=, carved into one region
 * window per process of the VM) and listens on the channel socket that
 * QEMU's virtio-serial chardev connects to. nk-vmagent inside the VM
 * speaks the framing of netkernel/vmchan.h; for each process it proxies,
 * nkd makes an ordinary control connection (nk_ctl__inject) whose identity
 * is the VM guest, so the engine treats it as any other connection.
 */
#ifndef NKD_VM_H
#define NKD_VM_H

#include <stdint.h>

#include "region.h"

struct nk_engine;
struct nk_conn;
struct nk_ph;
struct nk_vmset;

/* Opens every VM guest's file and channel; 0 or -errno (logged). */
int nk_vm__create(struct nk_engine *e, struct nk_vmset **out);
/* Closes the channels: hooks do nothing from now on. */
void nk_vm__shutdown(struct nk_vmset *s);
/* After nk_engine__destroy (regions give their windows back first). */
void nk_vm__destroy(struct nk_vmset *s);

/* conn_setup() of a VM guest's connection: a window of its file. */
int nk_vm__region(struct nk_engine *e, const char *guest,
		  const struct nk_region_params *p, struct nk_region **out);
/* The conn's CQ tail moved while its process sleeps: tell the agent. */
void nk_vm__wake(const struct nk_conn *c);
/* PH_OP frames sent on the conn's channel since its agent's HELLO. */
uint32_t nk_vm__ph_seq(const struct nk_conn *c);
/* placeholder.c changed a VM placeholder's state: mirror it in the VM. */
void nk_vm__ph(const struct nk_ph *ph, uint32_t op, uint32_t arg);

#endif /* NKD_VM_H */
