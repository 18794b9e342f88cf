// Draws Dear ImGui's ImDrawData with Qt's OpenGL function resolution: one
// shader, one streamed vertex/index buffer pair, the font atlas texture.
// Works on desktop GL (compatibility or 3.3 core) and GL ES 2/3, so Mesa's
// llvmpipe under xvfb renders it too. All calls need the widget's context current.
#pragma once

#include <QOpenGLFunctions>
#include <QOpenGLShaderProgram>
#include <QOpenGLVertexArrayObject>

#include <memory>

struct ImDrawData;
struct ImFontAtlas;

namespace gb::ui {

class ImGuiRenderer : protected QOpenGLFunctions {
  public:
    ImGuiRenderer() = default;
    ~ImGuiRenderer();
    ImGuiRenderer(const ImGuiRenderer &) = delete;
    ImGuiRenderer & operator=(const ImGuiRenderer &) = delete;

    bool initialize();                       // shader and buffers; false on failure (see log)
    void uploadFontAtlas(ImFontAtlas * atlas);  // (re)creates the texture, sets atlas->TexID
    void render(const ImDrawData * data);    // into the bound framebuffer
    void destroy();                          // GL objects (context current)
    const QString & log() const { return m_log; }
    bool isInitialized() const { return m_program != nullptr; }

  private:
    void setupState(const ImDrawData * data, int fbWidth, int fbHeight);
    void bindVertexLayout(size_t vertexOffsetBytes);

    std::unique_ptr<QOpenGLShaderProgram> m_program;
    QOpenGLVertexArrayObject m_vao;
    GLuint m_vbo = 0;
    GLuint m_ibo = 0;
    GLuint m_fontTexture = 0;
    int m_locProjection = -1;
    int m_locTexture = -1;
    int m_locPosition = -1;
    int m_locUv = -1;
    int m_locColor = -1;
    QString m_log;
};

}  // namespace gb::ui
