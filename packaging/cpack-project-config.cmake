# Read by cpack (CPACK_PROJECT_CONFIG_FILE). The .deb installs /usr/bin/sluice and a unit that
# runs exactly that path, so the tree must have been configured with the /usr prefix.
if(CPACK_GENERATOR STREQUAL "DEB" AND NOT CPACK_SLUICE_CONFIGURED_PREFIX STREQUAL "/usr")
  message(FATAL_ERROR "the sluice .deb needs a build tree configured with "
    "-DCMAKE_INSTALL_PREFIX=/usr (this one has '${CPACK_SLUICE_CONFIGURED_PREFIX}')")
endif()
