// QuantLabDialog: the quantization lab in the app. Pick weight formats (and
// GPTQ) for the loaded model, write them as GGUF files, and compare them with
// the reference in one table: size, perplexity, KL-divergence, same top token,
// tokens/s. Runs in the background (QuantLab) with progress and cancellation.
#pragma once

#include "quant_lab.h"

#include <QDialog>

class QComboBox;
class QLabel;
class QLineEdit;
class QListWidget;
class QListWidgetItem;
class QPlainTextEdit;
class QProgressBar;
class QPushButton;
class QSpinBox;
class QTableWidget;

class QuantLabDialog : public QDialog {
    Q_OBJECT
public:
    // outputDir: where written variants go.
    QuantLabDialog(const QString &outputDir, QWidget *parent = nullptr);

    void setSourceModel(const QString &path);
    QString sourceModel() const;
    // Variant ids: "file", "f16", "q8_0", ... , "gptq-q4_0", "rtn-q4_0"; "path:<file>" for added files.
    void setVariantChecked(const QString &id, bool checked);
    QStringList checkedVariants() const;
    void setReference(const QString &id);
    void setEvalText(const QString &text);
    void setContextLength(int n);
    void setMaxChunks(int n);
    QuantLabRequest request(bool evaluate) const;

    QuantLab *lab() const { return m_lab; }
    QTableWidget *table() const { return m_table; }
    QLabel *statusLabel() const { return m_status; }
    QList<QuantLabRow> rows() const { return m_rows; }
    QString markdown() const { return m_markdown; }

public slots:
    void startEvaluation();   // write the variants, then evaluate them
    void startWriting();      // only write them
    void cancel();

signals:
    void loadRequested(const QString &path);  // "Load in chat" on a result row

private:
    void start(bool evaluate);
    void addFileVariant(const QString &path);
    void updateReferenceChoices();
    void updateButtons();
    void showRows(const QList<QuantLabRow> &rows, const QString &markdown);
    QString variantName(const QString &id) const;

    QuantLab *m_lab;
    QString m_outputDir;
    QLineEdit *m_source = nullptr;
    QListWidget *m_variants = nullptr;
    QComboBox *m_reference = nullptr;
    QPlainTextEdit *m_text = nullptr;
    QSpinBox *m_ctx = nullptr;
    QSpinBox *m_chunks = nullptr;
    QSpinBox *m_group = nullptr;
    QPushButton *m_run = nullptr;
    QPushButton *m_write = nullptr;
    QPushButton *m_cancel = nullptr;
    QPushButton *m_copy = nullptr;
    QPushButton *m_load = nullptr;
    QProgressBar *m_progress = nullptr;
    QLabel *m_status = nullptr;
    QTableWidget *m_table = nullptr;
    QList<QuantLabRow> m_rows;
    QString m_markdown;
};
