# Tests of glassbox_ui (widgets over a fake engine, the downloader against a
# local HTTP server, the model library) and an end-to-end run with the real model.
# GUI tests run under xvfb-run when it is installed, else on the offscreen platform.
find_package(Qt6 REQUIRED COMPONENTS Widgets Network Test Sql)
find_program(GLASSBOX_XVFB_RUN xvfb-run)

function(glassbox_add_app_test name)
  cmake_parse_arguments(T "" "" "SOURCES;LABELS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  set_target_properties(${name} PROPERTIES AUTOMOC ON)
  target_link_libraries(${name} PRIVATE glassbox_ui Qt6::Test Qt6::Network Qt6::Sql)
  target_include_directories(${name} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/support ${PROJECT_SOURCE_DIR}/tests/appcore/support)
  target_compile_definitions(${name} PRIVATE
    GLASSBOX_MODEL_DIR="${GLASSBOX_MODEL_DIR}"
    GLASSBOX_FIXTURE_DIR="${GLASSBOX_FIXTURE_DIR}")
  if(GLASSBOX_XVFB_RUN)
    add_test(NAME ${name} COMMAND ${GLASSBOX_XVFB_RUN} -a -s "-screen 0 1600x1200x24" $<TARGET_FILE:${name}>)
  else()
    add_test(NAME ${name} COMMAND ${name})
    set_tests_properties(${name} PROPERTIES ENVIRONMENT "QT_QPA_PLATFORM=offscreen")
  endif()
  set_tests_properties(${name} PROPERTIES LABELS "${T_LABELS}" TIMEOUT 600)
endfunction()

glassbox_add_app_test(tst_ui_message_views SOURCES tst_ui_message_views.cpp LABELS gui)
glassbox_add_app_test(tst_ui_main_window SOURCES tst_ui_main_window.cpp LABELS gui)
glassbox_add_app_test(tst_ui_model_downloader SOURCES tst_ui_model_downloader.cpp LABELS gui)
glassbox_add_app_test(tst_ui_model_library SOURCES tst_ui_model_library.cpp LABELS gui)
if(TARGET glassbox_ui_inspector)
  glassbox_add_app_test(tst_ui_inspector_host SOURCES tst_ui_inspector_host.cpp LABELS gui)
endif()

# With the real model (needs the engine's model code).
file(STRINGS ${PROJECT_SOURCE_DIR}/engine/src/model.cpp _ui_model_head LIMIT_COUNT 1)
if(NOT _ui_model_head MATCHES "^// Placeholder")
  glassbox_add_app_test(tst_ui_end_to_end_model SOURCES tst_ui_end_to_end_model.cpp LABELS "model;gui")
  if(TARGET glassbox_ui_inspector)
    glassbox_add_app_test(tst_ui_inspector_batch_model SOURCES tst_ui_inspector_batch_model.cpp LABELS "model;gui")
  endif()
  # The glassbox executable killed with SIGKILL mid-reply, then reopened.
  if(TARGET glassbox)
    glassbox_add_app_test(tst_app_crash_model SOURCES tst_app_crash_model.cpp LABELS "model;gui")
    target_compile_definitions(tst_app_crash_model PRIVATE GLASSBOX_APP="$<TARGET_FILE:glassbox>")
    add_dependencies(tst_app_crash_model glassbox)
  endif()
endif()

# Renders the README screenshots (scripts/screenshots.sh); not a test.
add_executable(glassbox-screenshots glassbox_screenshots.cpp)
target_link_libraries(glassbox-screenshots PRIVATE glassbox_ui Qt6::Test)
