// SettingsDialog: every app setting, applied as soon as it changes (no OK
// button). Engine settings that need a reload show its progress here while
// the chat stays as it is; options the engine does not have yet are shown
// disabled with "not available yet".
#pragma once

#include "settings.h"

#include <QDialog>
#include <QHash>

class EngineWorker;
class QComboBox;
class QLabel;
class QProgressBar;
class QToolButton;
class QWidget;

class SettingsDialog : public QDialog {
    Q_OBJECT
public:
    SettingsDialog(Settings *settings, EngineWorker *engine, QWidget *parent = nullptr);

    // The editor of a setting (QSpinBox, QDoubleSpinBox, QComboBox, QPlainTextEdit).
    QWidget *editor(Settings::Key key) const { return m_editors.value(key); }
    QLabel *reloadStatus() const { return m_status; }
    QLabel *weightsInfo() const { return m_weightsInfo; }
    QToolButton *cancelButton() const { return m_cancel; }
    bool cudaAvailable() const { return m_cudaAvailable; }
    static QString choiceLabel(const QString &choice);

private:
    QWidget *makeEditor(Settings::Key key);
    void showValue(Settings::Key key, const QVariant &value);
    void apply(Settings::Key key, const QVariant &value);
    static QWidget *unavailable(QWidget *editor, const QString &why);
    void updateReloadStatus();
    void setCudaAvailable(bool available, const QString &why);
    void showModelInfo();

    Settings *m_settings;
    EngineWorker *m_engine;
    QHash<Settings::Key, QWidget *> m_editors;
    QLabel *m_status = nullptr;
    QProgressBar *m_progress = nullptr;
    QToolButton *m_cancel = nullptr;
    QComboBox *m_backend = nullptr;
    QLabel *m_weightsInfo = nullptr;
    bool m_cudaAvailable = false;
    bool m_updating = false;
};
