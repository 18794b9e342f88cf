// ImGuiRenderer: ImDrawData -> GL draw calls (triangles, per-command scissor and
// texture; large meshes via ImDrawCmd::VtxOffset by re-pointing attributes).
#include "imgui_renderer.h"

#include <imgui.h>

#include <QOpenGLContext>
#include <QSurfaceFormat>

#include <cstddef>
#include <cstdint>

namespace gb::ui {

namespace {

// GLSL for GL 2.1 compatibility and GL ES 2/3 ("#version 100").
const char * kVertexLegacy = R"(
attribute vec2 a_position;
attribute vec2 a_uv;
attribute vec4 a_color;
uniform mat4 u_projection;
varying vec2 v_uv;
varying vec4 v_color;
void main() {
    v_uv = a_uv;
    v_color = a_color;
    gl_Position = u_projection * vec4(a_position, 0.0, 1.0);
}
)";
const char * kFragmentLegacy = R"(
#ifdef GL_ES
precision mediump float;
#endif
uniform sampler2D u_texture;
varying vec2 v_uv;
varying vec4 v_color;
void main() { gl_FragColor = v_color * texture2D(u_texture, v_uv); }
)";
// GLSL 3.30 core for core-profile contexts.
const char * kVertexCore = R"(
in vec2 a_position;
in vec2 a_uv;
in vec4 a_color;
uniform mat4 u_projection;
out vec2 v_uv;
out vec4 v_color;
void main() {
    v_uv = a_uv;
    v_color = a_color;
    gl_Position = u_projection * vec4(a_position, 0.0, 1.0);
}
)";
const char * kFragmentCore = R"(
uniform sampler2D u_texture;
in vec2 v_uv;
in vec4 v_color;
out vec4 o_color;
void main() { o_color = v_color * texture(u_texture, v_uv); }
)";

GLuint textureOf(ImTextureID id) { return GLuint(reinterpret_cast<intptr_t>(id)); }

}  // namespace

ImGuiRenderer::~ImGuiRenderer() = default;  // GL objects need a current context: call destroy()

bool ImGuiRenderer::initialize() {
    initializeOpenGLFunctions();
    QOpenGLContext * ctx = QOpenGLContext::currentContext();
    const QSurfaceFormat fmt = ctx->format();
    const bool core = !ctx->isOpenGLES() && fmt.profile() == QSurfaceFormat::CoreProfile;
    QByteArray header = ctx->isOpenGLES() ? "#version 100\n" : (core ? "#version 330 core\n" : "#version 120\n");

    m_program = std::make_unique<QOpenGLShaderProgram>();
    const bool ok =
        m_program->addShaderFromSourceCode(QOpenGLShader::Vertex, header + (core ? kVertexCore : kVertexLegacy)) &&
        m_program->addShaderFromSourceCode(QOpenGLShader::Fragment, header + (core ? kFragmentCore : kFragmentLegacy));
    if (!ok || !m_program->link()) {
        m_log = m_program->log();
        m_program.reset();
        return false;
    }
    m_locProjection = m_program->uniformLocation("u_projection");
    m_locTexture = m_program->uniformLocation("u_texture");
    m_locPosition = m_program->attributeLocation("a_position");
    m_locUv = m_program->attributeLocation("a_uv");
    m_locColor = m_program->attributeLocation("a_color");

    m_vao.create();  // a no-op where VAOs do not exist (GL ES 2); required in core profiles
    glGenBuffers(1, &m_vbo);
    glGenBuffers(1, &m_ibo);
    return true;
}

void ImGuiRenderer::uploadFontAtlas(ImFontAtlas * atlas) {
    unsigned char * pixels = nullptr;
    int width = 0, height = 0;
    atlas->GetTexDataAsRGBA32(&pixels, &width, &height);
    if (m_fontTexture) glDeleteTextures(1, &m_fontTexture);
    glGenTextures(1, &m_fontTexture);
    glBindTexture(GL_TEXTURE_2D, m_fontTexture);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MIN_FILTER, GL_LINEAR);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MAG_FILTER, GL_LINEAR);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_S, GL_CLAMP_TO_EDGE);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_T, GL_CLAMP_TO_EDGE);
    glPixelStorei(GL_UNPACK_ALIGNMENT, 1);
    glTexImage2D(GL_TEXTURE_2D, 0, GL_RGBA, width, height, 0, GL_RGBA, GL_UNSIGNED_BYTE, pixels);
    atlas->SetTexID(reinterpret_cast<ImTextureID>(intptr_t(m_fontTexture)));
    atlas->ClearTexData();  // the CPU copy is no longer needed
}

void ImGuiRenderer::destroy() {
    if (m_vbo) glDeleteBuffers(1, &m_vbo);
    if (m_ibo) glDeleteBuffers(1, &m_ibo);
    if (m_fontTexture) glDeleteTextures(1, &m_fontTexture);
    m_vbo = m_ibo = m_fontTexture = 0;
    if (m_vao.isCreated()) m_vao.destroy();
    m_program.reset();
}

void ImGuiRenderer::bindVertexLayout(size_t offset) {
    const GLsizei stride = sizeof(ImDrawVert);
    glVertexAttribPointer(GLuint(m_locPosition), 2, GL_FLOAT, GL_FALSE, stride,
                          reinterpret_cast<const void *>(offset + offsetof(ImDrawVert, pos)));
    glVertexAttribPointer(GLuint(m_locUv), 2, GL_FLOAT, GL_FALSE, stride,
                          reinterpret_cast<const void *>(offset + offsetof(ImDrawVert, uv)));
    glVertexAttribPointer(GLuint(m_locColor), 4, GL_UNSIGNED_BYTE, GL_TRUE, stride,
                          reinterpret_cast<const void *>(offset + offsetof(ImDrawVert, col)));
}

void ImGuiRenderer::setupState(const ImDrawData * data, int fbWidth, int fbHeight) {
    glEnable(GL_BLEND);
    glBlendEquation(GL_FUNC_ADD);
    glBlendFuncSeparate(GL_SRC_ALPHA, GL_ONE_MINUS_SRC_ALPHA, GL_ONE, GL_ONE_MINUS_SRC_ALPHA);
    glDisable(GL_CULL_FACE);
    glDisable(GL_DEPTH_TEST);
    glDisable(GL_STENCIL_TEST);
    glEnable(GL_SCISSOR_TEST);
    glViewport(0, 0, fbWidth, fbHeight);

    // Orthographic projection of ImGui's display rectangle onto clip space.
    const float l = data->DisplayPos.x, r = data->DisplayPos.x + data->DisplaySize.x;
    const float t = data->DisplayPos.y, b = data->DisplayPos.y + data->DisplaySize.y;
    const GLfloat ortho[16] = {
        2.0f / (r - l), 0.0f, 0.0f, 0.0f,
        0.0f, 2.0f / (t - b), 0.0f, 0.0f,
        0.0f, 0.0f, -1.0f, 0.0f,
        (r + l) / (l - r), (t + b) / (b - t), 0.0f, 1.0f,
    };
    m_program->bind();
    glUniformMatrix4fv(m_locProjection, 1, GL_FALSE, ortho);
    glUniform1i(m_locTexture, 0);
    glActiveTexture(GL_TEXTURE0);
    if (m_vao.isCreated()) m_vao.bind();
    glBindBuffer(GL_ARRAY_BUFFER, m_vbo);
    glBindBuffer(GL_ELEMENT_ARRAY_BUFFER, m_ibo);
    glEnableVertexAttribArray(GLuint(m_locPosition));
    glEnableVertexAttribArray(GLuint(m_locUv));
    glEnableVertexAttribArray(GLuint(m_locColor));
}

void ImGuiRenderer::render(const ImDrawData * data) {
    if (!m_program || !data) return;
    const int fb_w = int(data->DisplaySize.x * data->FramebufferScale.x);
    const int fb_h = int(data->DisplaySize.y * data->FramebufferScale.y);
    if (fb_w <= 0 || fb_h <= 0) return;
    setupState(data, fb_w, fb_h);

    const ImVec2 clip_off = data->DisplayPos;
    const ImVec2 clip_scale = data->FramebufferScale;
    const GLenum idx_type = sizeof(ImDrawIdx) == 2 ? GL_UNSIGNED_SHORT : GL_UNSIGNED_INT;
    for (int n = 0; n < data->CmdListsCount; ++n) {
        const ImDrawList * list = data->CmdLists[n];
        glBufferData(GL_ARRAY_BUFFER, GLsizeiptr(list->VtxBuffer.Size) * GLsizeiptr(sizeof(ImDrawVert)),
                     list->VtxBuffer.Data, GL_STREAM_DRAW);
        glBufferData(GL_ELEMENT_ARRAY_BUFFER, GLsizeiptr(list->IdxBuffer.Size) * GLsizeiptr(sizeof(ImDrawIdx)),
                     list->IdxBuffer.Data, GL_STREAM_DRAW);
        unsigned int bound_vtx_offset = ~0u;
        for (const ImDrawCmd & cmd : list->CmdBuffer) {
            if (cmd.UserCallback) {
                if (cmd.UserCallback == ImDrawCallback_ResetRenderState) setupState(data, fb_w, fb_h);
                else cmd.UserCallback(list, &cmd);
                bound_vtx_offset = ~0u;
                continue;
            }
            // Clip rectangle in framebuffer pixels; GL's scissor origin is bottom-left.
            const float x0 = (cmd.ClipRect.x - clip_off.x) * clip_scale.x;
            const float y0 = (cmd.ClipRect.y - clip_off.y) * clip_scale.y;
            const float x1 = (cmd.ClipRect.z - clip_off.x) * clip_scale.x;
            const float y1 = (cmd.ClipRect.w - clip_off.y) * clip_scale.y;
            if (x1 <= x0 || y1 <= y0) continue;
            glScissor(GLint(x0), GLint(float(fb_h) - y1), GLsizei(x1 - x0), GLsizei(y1 - y0));
            if (cmd.VtxOffset != bound_vtx_offset) {  // VtxOffset without glDrawElementsBaseVertex
                bindVertexLayout(size_t(cmd.VtxOffset) * sizeof(ImDrawVert));
                bound_vtx_offset = cmd.VtxOffset;
            }
            glBindTexture(GL_TEXTURE_2D, textureOf(cmd.TextureId));
            glDrawElements(GL_TRIANGLES, GLsizei(cmd.ElemCount), idx_type,
                           reinterpret_cast<const void *>(size_t(cmd.IdxOffset) * sizeof(ImDrawIdx)));
        }
    }
    glDisableVertexAttribArray(GLuint(m_locPosition));
    glDisableVertexAttribArray(GLuint(m_locUv));
    glDisableVertexAttribArray(GLuint(m_locColor));
    if (m_vao.isCreated()) m_vao.release();
    m_program->release();
    glDisable(GL_SCISSOR_TEST);  // Qt clears this framebuffer next frame; a scissor would clip that
    glDisable(GL_BLEND);
}

}  // namespace gb::ui
