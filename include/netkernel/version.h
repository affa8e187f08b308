/* SPDX-License-Identifier: MIT */
/*
 * The release every command reports with --version and the Debian
 * packages carry (debian/changelog must agree). ABI versions are separate:
 * see NK_ABI_VERSION in abi.h.
 */
#ifndef NETKERNEL_VERSION_H
#define NETKERNEL_VERSION_H

#define NK_VERSION_STRING "0.4.0"

#endif /* NETKERNEL_VERSION_H */
