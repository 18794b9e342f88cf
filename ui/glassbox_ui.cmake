# glassbox_ui: the Qt Widgets desktop UI over the app core (glassbox_appcore).
# Included from ui/CMakeLists.txt; the `glassbox` executable is in app/CMakeLists.txt.
find_package(Qt6 REQUIRED COMPONENTS Core Gui Widgets Network Concurrent)

add_library(glassbox_ui STATIC
  ${CMAKE_CURRENT_LIST_DIR}/app_context.h
  ${CMAKE_CURRENT_LIST_DIR}/app_context.cpp
  ${CMAKE_CURRENT_LIST_DIR}/main_window.h
  ${CMAKE_CURRENT_LIST_DIR}/main_window.cpp
  ${CMAKE_CURRENT_LIST_DIR}/main_window_actions.cpp
  ${CMAKE_CURRENT_LIST_DIR}/conversation_list.h
  ${CMAKE_CURRENT_LIST_DIR}/conversation_list.cpp
  ${CMAKE_CURRENT_LIST_DIR}/chat_view.h
  ${CMAKE_CURRENT_LIST_DIR}/chat_view.cpp
  ${CMAKE_CURRENT_LIST_DIR}/message_widget.h
  ${CMAKE_CURRENT_LIST_DIR}/message_widget.cpp
  ${CMAKE_CURRENT_LIST_DIR}/message_text_view.h
  ${CMAKE_CURRENT_LIST_DIR}/message_text_view.cpp
  ${CMAKE_CURRENT_LIST_DIR}/markdown.h
  ${CMAKE_CURRENT_LIST_DIR}/markdown.cpp
  ${CMAKE_CURRENT_LIST_DIR}/composer.h
  ${CMAKE_CURRENT_LIST_DIR}/composer.cpp
  ${CMAKE_CURRENT_LIST_DIR}/system_prompt_panel.h
  ${CMAKE_CURRENT_LIST_DIR}/system_prompt_panel.cpp
  ${CMAKE_CURRENT_LIST_DIR}/model_metadata.h
  ${CMAKE_CURRENT_LIST_DIR}/model_metadata.cpp
  ${CMAKE_CURRENT_LIST_DIR}/model_downloader.h
  ${CMAKE_CURRENT_LIST_DIR}/model_downloader.cpp
  ${CMAKE_CURRENT_LIST_DIR}/model_library_dialog.h
  ${CMAKE_CURRENT_LIST_DIR}/model_library_dialog.cpp
  ${CMAKE_CURRENT_LIST_DIR}/settings_dialog.h
  ${CMAKE_CURRENT_LIST_DIR}/settings_dialog.cpp
  ${CMAKE_CURRENT_LIST_DIR}/quant_lab_dialog.h
  ${CMAKE_CURRENT_LIST_DIR}/quant_lab_dialog.cpp
  ${CMAKE_CURRENT_LIST_DIR}/inspector_dock.h
  ${CMAKE_CURRENT_LIST_DIR}/inspector_dock.cpp
  ${CMAKE_CURRENT_LIST_DIR}/resources.qrc
)
set_target_properties(glassbox_ui PROPERTIES AUTOMOC ON AUTORCC ON)
target_include_directories(glassbox_ui PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(glassbox_ui PUBLIC glassbox_appcore Qt6::Widgets Qt6::Network Qt6::Concurrent)
# Where the README's setup puts the default model (searched on first run).
target_compile_definitions(glassbox_ui PRIVATE GLASSBOX_SOURCE_MODEL_DIR="${PROJECT_SOURCE_DIR}/models")
if(TARGET glassbox_ui_inspector)
  target_sources(glassbox_ui PRIVATE ${CMAKE_CURRENT_LIST_DIR}/inspector_host.h ${CMAKE_CURRENT_LIST_DIR}/inspector_host.cpp)
  target_link_libraries(glassbox_ui PUBLIC glassbox_ui_inspector)
  target_compile_definitions(glassbox_ui PRIVATE GLASSBOX_HAVE_INSPECTOR=1)
endif()
