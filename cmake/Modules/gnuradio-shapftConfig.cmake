find_package(PkgConfig)

PKG_CHECK_MODULES(PC_GR_SHAPFT gnuradio-shapft)

FIND_PATH(
    GR_SHAPFT_INCLUDE_DIRS
    NAMES gnuradio/shapft/api.h
    HINTS $ENV{SHAPFT_DIR}/include
        ${PC_SHAPFT_INCLUDEDIR}
    PATHS ${CMAKE_INSTALL_PREFIX}/include
          /usr/local/include
          /usr/include
)

FIND_LIBRARY(
    GR_SHAPFT_LIBRARIES
    NAMES gnuradio-shapft
    HINTS $ENV{SHAPFT_DIR}/lib
        ${PC_SHAPFT_LIBDIR}
    PATHS ${CMAKE_INSTALL_PREFIX}/lib
          ${CMAKE_INSTALL_PREFIX}/lib64
          /usr/local/lib
          /usr/local/lib64
          /usr/lib
          /usr/lib64
          )

include("${CMAKE_CURRENT_LIST_DIR}/gnuradio-shapftTarget.cmake")

INCLUDE(FindPackageHandleStandardArgs)
FIND_PACKAGE_HANDLE_STANDARD_ARGS(GR_SHAPFT DEFAULT_MSG GR_SHAPFT_LIBRARIES GR_SHAPFT_INCLUDE_DIRS)
MARK_AS_ADVANCED(GR_SHAPFT_LIBRARIES GR_SHAPFT_INCLUDE_DIRS)
