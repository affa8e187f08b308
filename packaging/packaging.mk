# packaging/: what `make install` adds to the programs (the systemd unit,
# the example /etc/netkernel/nkd.conf, the documentation) and `make deb`.
#   make install      everything, into $(DESTDIR)$(PREFIX) (+ SYSCONFDIR)
#   make install-host the netkernel package's files, install-guest the
#                     netkernel-guest package's (debian/rules uses both)
#   make deb          $(DEB_OUT)/netkernel{,-guest}_VERSION_ARCH.deb, built
#                     by dpkg-buildpackage in a copy of the tree with
#                     Debian's hardening flags (scripts/build-deb.sh);
#                     DEB_REUSE_BUILD=1 packages $(BUILD)'s binaries instead

SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
UNITDIR ?= $(PREFIX)/lib/systemd/system
DOCDIR ?= $(PREFIX)/share/doc/netkernel
# install-guest's docs (guest.mk); the guest package has its own directory.
GUEST_DOCDIR ?= $(DOCDIR)
DEB_OUT ?= $(BUILD)/deb
DEB_REUSE_BUILD ?= 0
NK_HOST_DOCS := README.md docs/config.md docs/nkd.md docs/architecture.md \
	docs/security.md docs/abi.md docs/afxdp-nsm.md docs/steering.md \
	docs/packaging.md

nk-host: $(BUILD)/nkd $(BUILD)/nkctl $(NK_LOADER) $(NK_STEER_OBJ)
nk-guest: $(BUILD)/libnkshim.so $(BUILD)/nkrun $(BUILD)/nk-vmagent

# The unit names the installed nkd and config; an existing config (the
# operator's) is never overwritten.
install-service: packaging/nkd.service.in packaging/nkd.conf
	install -d $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)/netkernel \
		$(DESTDIR)$(DOCDIR)
	sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
		-e 's|@DOCDIR@|$(DOCDIR)|g' packaging/nkd.service.in \
		>$(DESTDIR)$(UNITDIR)/nkd.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/nkd.service
	[ -e $(DESTDIR)$(SYSCONFDIR)/netkernel/nkd.conf ] || \
		install -m 0644 packaging/nkd.conf \
			$(DESTDIR)$(SYSCONFDIR)/netkernel/nkd.conf
	install -m 0644 $(NK_HOST_DOCS) $(DESTDIR)$(DOCDIR)/

install-host: install-userspace install-loader install-service
install: install-service

deb: $(if $(filter 1,$(DEB_REUSE_BUILD)),nk-host nk-guest)
	DEB_REUSE_BUILD=$(DEB_REUSE_BUILD) ./scripts/build-deb.sh $(BUILD) $(DEB_OUT)

.PHONY: nk-host nk-guest install-service install-host deb
