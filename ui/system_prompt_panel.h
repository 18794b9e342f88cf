// SystemPromptPanel: the current conversation's system prompt (or, with no
// conversation open, the default for new ones) and saved presets: pick one
// to apply it, save the current text under a name, delete a preset.
#pragma once

#include <QWidget>

class ChatController;
class Settings;
class QComboBox;
class QLineEdit;
class QPlainTextEdit;
class QPushButton;
class QTimer;

class SystemPromptPanel : public QWidget {
    Q_OBJECT
public:
    SystemPromptPanel(ChatController *controller, Settings *settings, QWidget *parent = nullptr);

    QPlainTextEdit *editor() const { return m_edit; }
    QComboBox *presetBox() const { return m_presets; }
    QString promptText() const;

public slots:
    void applyNow();  // writes the edited prompt at once (otherwise after a short pause)
    void applyPreset(const QString &name);
    void savePreset(const QString &name);
    void deleteCurrentPreset();

private:
    void loadFromSnapshot();
    void rebuildPresets();

    ChatController *m_controller;
    Settings *m_settings;
    QPlainTextEdit *m_edit = nullptr;
    QComboBox *m_presets = nullptr;
    QLineEdit *m_name = nullptr;
    QPushButton *m_save = nullptr;
    QPushButton *m_delete = nullptr;
    QTimer *m_applyTimer = nullptr;
    qint64 m_conversationId = -1;
    QString m_applied;
    bool m_loading = false;
};
