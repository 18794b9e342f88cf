// SystemPromptPanel: editing with a debounced apply, presets through Settings.
#include "system_prompt_panel.h"

#include "chat_controller.h"
#include "settings.h"

#include <QComboBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QTimer>
#include <QVBoxLayout>

SystemPromptPanel::SystemPromptPanel(ChatController *controller, Settings *settings, QWidget *parent)
    : QWidget(parent)
    , m_controller(controller)
    , m_settings(settings)
{
    setObjectName(QStringLiteral("systemPromptPanel"));
    auto *layout = new QVBoxLayout(this);
    layout->setContentsMargins(8, 4, 8, 4);
    auto *row = new QHBoxLayout;
    auto *label = new QLabel(tr("System prompt"), this);
    row->addWidget(label);
    row->addStretch(1);
    m_presets = new QComboBox(this);
    m_presets->setObjectName(QStringLiteral("presetBox"));
    m_presets->setAccessibleName(tr("System prompt presets"));
    m_presets->setMinimumContentsLength(14);
    row->addWidget(m_presets);
    m_name = new QLineEdit(this);
    m_name->setObjectName(QStringLiteral("presetName"));
    m_name->setPlaceholderText(tr("Preset name"));
    m_name->setAccessibleName(tr("Preset name"));
    m_name->setMaximumWidth(160);
    row->addWidget(m_name);
    m_save = new QPushButton(tr("Save preset"), this);
    m_save->setObjectName(QStringLiteral("savePreset"));
    row->addWidget(m_save);
    m_delete = new QPushButton(tr("Delete preset"), this);
    m_delete->setObjectName(QStringLiteral("deletePreset"));
    row->addWidget(m_delete);
    layout->addLayout(row);
    m_edit = new QPlainTextEdit(this);
    m_edit->setObjectName(QStringLiteral("systemPromptEdit"));
    m_edit->setAccessibleName(tr("System prompt"));
    m_edit->setPlaceholderText(tr("Instructions the model sees before the conversation (optional)"));
    m_edit->setFixedHeight(m_edit->fontMetrics().lineSpacing() * 4 + 12);
    label->setBuddy(m_edit);
    layout->addWidget(m_edit);

    m_applyTimer = new QTimer(this);
    m_applyTimer->setSingleShot(true);
    m_applyTimer->setInterval(600);
    connect(m_applyTimer, &QTimer::timeout, this, &SystemPromptPanel::applyNow);
    connect(m_edit, &QPlainTextEdit::textChanged, this, [this] {
        if (!m_loading)
            m_applyTimer->start();
    });
    connect(m_presets, &QComboBox::activated, this, [this](int index) {
        if (index > 0)
            applyPreset(m_presets->itemText(index));
    });
    connect(m_save, &QPushButton::clicked, this, [this] { savePreset(m_name->text()); });
    connect(m_name, &QLineEdit::returnPressed, this, [this] { savePreset(m_name->text()); });
    connect(m_delete, &QPushButton::clicked, this, &SystemPromptPanel::deleteCurrentPreset);
    connect(m_controller, &ChatController::snapshotChanged, this, &SystemPromptPanel::loadFromSnapshot);
    connect(m_settings, &Settings::presetsChanged, this, &SystemPromptPanel::rebuildPresets);
    connect(m_settings, &Settings::loaded, this, &SystemPromptPanel::loadFromSnapshot);
    rebuildPresets();
    loadFromSnapshot();
}

QString SystemPromptPanel::promptText() const
{
    return m_edit->toPlainText();
}

void SystemPromptPanel::loadFromSnapshot()
{
    const ChatSnapshot s = m_controller->snapshot();
    const QString prompt = s.conversation.id ? s.conversation.systemPrompt : m_settings->systemPrompt();
    // Only replace the text when the conversation changed or nothing is being typed.
    if (s.conversation.id == m_conversationId && (m_applyTimer->isActive() || prompt == promptText()))
        return;
    if (s.conversation.id != m_conversationId && m_applyTimer->isActive())
        applyNow();  // the edit belonged to the previous conversation
    m_conversationId = s.conversation.id;
    m_loading = true;
    m_edit->setPlainText(prompt);
    m_applied = prompt;
    m_loading = false;
}

void SystemPromptPanel::applyNow()
{
    m_applyTimer->stop();
    const QString text = promptText();
    if (text == m_applied)
        return;
    m_applied = text;
    if (m_conversationId > 0)
        m_controller->setSystemPrompt(text);
    else
        m_settings->setValue(Settings::Key::SystemPrompt, text);
}

void SystemPromptPanel::applyPreset(const QString &name)
{
    for (const PresetRecord &p : m_settings->presets())
        if (p.name == name) {
            m_edit->setPlainText(p.systemPrompt);
            m_name->setText(p.name);
            applyNow();
            return;
        }
}

void SystemPromptPanel::savePreset(const QString &name)
{
    const QString n = name.trimmed();
    if (n.isEmpty()) {
        m_name->setFocus();
        return;
    }
    m_settings->savePreset(n, promptText());
}

void SystemPromptPanel::deleteCurrentPreset()
{
    const QString n = m_name->text().trimmed().isEmpty() ? m_presets->currentText() : m_name->text().trimmed();
    for (const PresetRecord &p : m_settings->presets())
        if (p.name == n)
            m_settings->removePreset(p.id);
    m_name->clear();
}

void SystemPromptPanel::rebuildPresets()
{
    m_presets->clear();
    m_presets->addItem(tr("Presets…"));
    for (const PresetRecord &p : m_settings->presets())
        m_presets->addItem(p.name);
    m_delete->setEnabled(!m_settings->presets().isEmpty());
}
