# ctest layering_check: the layering check passes on the real tree and fails, naming the file and the
# include, on a copy of it where model/ includes from train/ and report/ includes gRPC.
# Inputs: -DSRC=<src/tokcom> -DLAYERS=... -DWORK=<scratch folder>
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")
execute_process(COMMAND ${CMAKE_COMMAND} -DSRC=${SRC} -DLAYERS=${LAYERS} -DSTAMP=${WORK}/ok.stamp
                        -P ${CMAKE_CURRENT_LIST_DIR}/check_layering.cmake
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the real tree fails the layering check:\n${err}")
endif()
file(COPY "${SRC}/" DESTINATION "${WORK}/src")
file(APPEND "${WORK}/src/model/vit.h" "#include \"tokcom/train/trainer.h\"\n")
file(APPEND "${WORK}/src/report/report.cpp" "#include <grpcpp/grpcpp.h>\n")
execute_process(COMMAND ${CMAKE_COMMAND} -DSRC=${WORK}/src -DLAYERS=${LAYERS} -DSTAMP=${WORK}/bad.stamp
                        -P ${CMAKE_CURRENT_LIST_DIR}/check_layering.cmake
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc EQUAL 0)
  message(FATAL_ERROR "an upward include passed the layering check")
endif()
foreach(expected "model/vit.h: '#include \"tokcom/train/trainer.h\"': model/ may include only model, core"
                 "report/report.cpp: '#include <grpcpp/grpcpp.h>': transport headers belong in net/ only")
  string(FIND "${err}" "${expected}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "the layering check's message lacks \"${expected}\":\n${err}")
  endif()
endforeach()
file(REMOVE_RECURSE "${WORK}")
message(STATUS "layering check: passes on the tree, refuses an upward include and a transport header")
