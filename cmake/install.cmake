# `cmake --install build --prefix P` installs the headers under
# P/include/loom (the repo root is the include root: "client/trace.h"),
# the libraries, the binaries, and P/lib/cmake/loom/loomConfig.cmake with a
# version file and the exported targets loom::graph, loom::runtime,
# loom::transport, loom::client_core and loom::client. A downstream project:
#
#   project(app C CXX)              # C: CapnProto's CMake config needs it
#   find_package(loom REQUIRED)
#   target_link_libraries(app PRIVATE loom::client)
#
# (examples/downstream is one, built and run by scripts/test).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(LOOM_EXPORTED_TARGETS loom_graph loom_runtime loom_transport loom_client_core loom_client)
set_target_properties(loom_graph PROPERTIES EXPORT_NAME graph)
set_target_properties(loom_runtime PROPERTIES EXPORT_NAME runtime)
set_target_properties(loom_transport PROPERTIES EXPORT_NAME transport)
set_target_properties(loom_client_core PROPERTIES EXPORT_NAME client_core)
set_target_properties(loom_client PROPERTIES EXPORT_NAME client)

install(TARGETS ${LOOM_EXPORTED_TARGETS}
  EXPORT loomTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION include/loom)
install(TARGETS loom loom-trace loom-server RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# Public headers of the exported libraries, and the generated Cap'n Proto ones.
foreach(dir graph runtime transport client)
  install(DIRECTORY ${CMAKE_SOURCE_DIR}/${dir}/ DESTINATION include/loom/${dir}
    FILES_MATCHING PATTERN "*.h" PATTERN "*.capnp")
endforeach()
install(FILES ${CMAKE_BINARY_DIR}/graph/graph.capnp.h DESTINATION include/loom/graph)
install(FILES ${CMAKE_BINARY_DIR}/transport/protocol.capnp.h DESTINATION include/loom/transport)

install(EXPORT loomTargets NAMESPACE loom:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/loom)
configure_package_config_file(${CMAKE_SOURCE_DIR}/cmake/loomConfig.cmake.in
  ${CMAKE_BINARY_DIR}/loomConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/loom)
write_basic_package_version_file(${CMAKE_BINARY_DIR}/loomConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/loomConfig.cmake ${CMAKE_BINARY_DIR}/loomConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/loom)
