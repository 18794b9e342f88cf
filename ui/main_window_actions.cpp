// MainWindow menus, toolbar and keyboard shortcuts.
#include "main_window.h"

#include "app_context.h"
#include "chat_view.h"
#include "composer.h"
#include "conversation_list.h"
#include "inspector_dock.h"
#include "system_prompt_panel.h"

#include <QApplication>
#include <QFileDialog>
#include <QMenuBar>
#include <QMessageBox>
#include <QToolBar>

QAction *MainWindow::addAction(QMenu *menu, const QString &objectName, const QString &text,
                               const QKeySequence &shortcut, const QString &toolTip)
{
    auto *a = new QAction(text, this);
    a->setObjectName(objectName);
    if (!shortcut.isEmpty())
        a->setShortcut(shortcut);
    a->setToolTip(shortcut.isEmpty() ? toolTip
                                     : QStringLiteral("%1 (%2)").arg(toolTip, shortcut.toString(QKeySequence::NativeText)));
    a->setStatusTip(toolTip);
    menu->addAction(a);
    QMainWindow::addAction(a);  // shortcuts work with the menu bar hidden too
    return a;
}

QAction *MainWindow::action(const QString &objectName) const
{
    return findChild<QAction *>(objectName);
}

void MainWindow::buildActions()
{
    QMenu *file = menuBar()->addMenu(tr("&File"));
    QAction *newChatAction = addAction(file, QStringLiteral("actionNewChat"), tr("&New chat"),
                                       QKeySequence(Qt::CTRL | Qt::Key_N), tr("Start a new conversation"));
    connect(newChatAction, &QAction::triggered, this, &MainWindow::newChat);
    file->addSeparator();
    QAction *library = addAction(file, QStringLiteral("actionModelLibrary"), tr("Model &library…"),
                                 QKeySequence(Qt::CTRL | Qt::Key_L), tr("Add, download and load models"));
    connect(library, &QAction::triggered, this, &MainWindow::openModelLibrary);
    QAction *openModel = addAction(file, QStringLiteral("actionOpenModel"), tr("&Open model file…"),
                                   QKeySequence::Open, tr("Load a GGUF model file"));
    connect(openModel, &QAction::triggered, this, &MainWindow::openModelFile);
    QAction *defaultModel = addAction(file, QStringLiteral("actionDefaultModel"), tr("Load the &default model"), {},
                                      tr("Load %1").arg(AppContext::defaultModelFileName()));
    connect(defaultModel, &QAction::triggered, this, &MainWindow::loadDefaultModel);
    QAction *lab = addAction(file, QStringLiteral("actionQuantLab"), tr("&Quantization lab…"), {},
                             tr("Write the model in other weight formats and compare their quality"));
    connect(lab, &QAction::triggered, this, &MainWindow::openQuantLab);
    file->addSeparator();
    QAction *quit = addAction(file, QStringLiteral("actionQuit"), tr("&Quit"), QKeySequence::Quit, tr("Quit Glassbox"));
    connect(quit, &QAction::triggered, this, &QWidget::close);

    QMenu *edit = menuBar()->addMenu(tr("&Edit"));
    QAction *find = addAction(edit, QStringLiteral("actionFind"), tr("&Find in chats…"), QKeySequence::Find,
                              tr("Search conversation titles and messages"));
    connect(find, &QAction::triggered, m_list, &ConversationList::focusSearch);
    QAction *settings = addAction(edit, QStringLiteral("actionSettings"), tr("&Settings…"),
                                  QKeySequence(Qt::CTRL | Qt::Key_Comma), tr("Engine and sampling settings"));
    settings->setMenuRole(QAction::PreferencesRole);
    connect(settings, &QAction::triggered, this, &MainWindow::openSettings);

    QMenu *chat = menuBar()->addMenu(tr("&Chat"));
    QAction *send = addAction(chat, QStringLiteral("actionSend"), tr("&Send"), QKeySequence(Qt::CTRL | Qt::Key_Return),
                              tr("Send the message"));
    connect(send, &QAction::triggered, this, &MainWindow::sendCurrentText);
    QAction *stop = addAction(chat, QStringLiteral("actionStop"), tr("S&top"), QKeySequence(Qt::Key_Escape),
                              tr("Stop the reply"));
    connect(stop, &QAction::triggered, this, &MainWindow::stopGeneration);
    QAction *regenerate = addAction(chat, QStringLiteral("actionRegenerate"), tr("&Regenerate"),
                                    QKeySequence(Qt::CTRL | Qt::Key_R), tr("Write a new version of the last reply"));
    connect(regenerate, &QAction::triggered, this, &MainWindow::regenerateLast);
    chat->addSeparator();
    QAction *rename = addAction(chat, QStringLiteral("actionRename"), tr("Re&name chat"), {}, tr("Rename this conversation"));
    connect(rename, &QAction::triggered, this,
            [this] { m_list->startRename(m_context->controller()->currentConversationId()); });
    QAction *pin = addAction(chat, QStringLiteral("actionPin"), tr("&Pin / unpin chat"), {}, tr("Keep this conversation at the top"));
    connect(pin, &QAction::triggered, this,
            [this] { m_list->togglePin(m_context->controller()->currentConversationId()); });
    QAction *remove = addAction(chat, QStringLiteral("actionDelete"), tr("&Delete chat…"), {}, tr("Delete this conversation"));
    connect(remove, &QAction::triggered, this,
            [this] { m_list->deleteConversation(m_context->controller()->currentConversationId(), true); });

    QMenu *view = menuBar()->addMenu(tr("&View"));
    view->setToolTipsVisible(true);
    QAction *systemPrompt = addAction(view, QStringLiteral("actionSystemPrompt"), tr("System &prompt"),
                                      QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_P), tr("Show the system prompt and presets"));
    systemPrompt->setCheckable(true);
    connect(systemPrompt, &QAction::toggled, m_systemPrompt, &QWidget::setVisible);
    QAction *tokens = addAction(view, QStringLiteral("actionTokenView"), tr("Show &tokens"),
                                QKeySequence(Qt::CTRL | Qt::Key_T),
                                tr("Show replies token by token, tinted by probability; hover a token for its alternatives"));
    tokens->setCheckable(true);
    connect(tokens, &QAction::toggled, this, &MainWindow::setTokenView);
    QAction *speculative = addAction(view, QStringLiteral("actionSpeculativeColours"), tr("Colour &speculative tokens"),
                                     QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_T),
                                     tr("Show tokens tinted by origin: accepted draft (blue), correction (orange), "
                                        "bonus (violet); plain steps untinted. Turn speculative decoding on in Settings."));
    speculative->setCheckable(true);
    connect(speculative, &QAction::toggled, this, [this, tokens](bool on) {
        m_chat->setOriginColours(on);
        if (on && !tokens->isChecked())
            tokens->setChecked(true);  // the tint is on the token view
    });
    view->addSeparator();
    QAction *inspector = m_inspector->toggleViewAction();
    inspector->setObjectName(QStringLiteral("actionInspector"));
    inspector->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_I));
    view->addAction(inspector);

    QMenu *help = menuBar()->addMenu(tr("&Help"));
    QAction *about = addAction(help, QStringLiteral("actionAbout"), tr("&About Glassbox"), {}, tr("About Glassbox"));
    connect(about, &QAction::triggered, this, [this] {
        auto *box = new QMessageBox(QMessageBox::Information, tr("About Glassbox"),
                                    tr("<b>Glassbox %1</b><br>Chat with language models on your own computer, "
                                       "with an in-process engine you can look into.")
                                        .arg(QApplication::applicationVersion()),
                                    QMessageBox::Ok, this);
        box->setAttribute(Qt::WA_DeleteOnClose);
        box->open();
    });

    QToolBar *bar = addToolBar(tr("Main"));
    bar->setObjectName(QStringLiteral("mainToolBar"));
    bar->setMovable(false);
    bar->setToolButtonStyle(Qt::ToolButtonTextOnly);
    bar->addAction(newChatAction);
    bar->addSeparator();
    bar->addAction(stop);
    bar->addAction(regenerate);
    bar->addSeparator();
    bar->addAction(systemPrompt);
    bar->addAction(tokens);
    bar->addAction(inspector);
    bar->addSeparator();
    bar->addAction(library);
    bar->addAction(settings);
}

void MainWindow::openModelFile()
{
    auto *dialog = new QFileDialog(this, tr("Open a model"), QString(), tr("GGUF models (*.gguf);;All files (*)"));
    dialog->setFileMode(QFileDialog::ExistingFile);
    dialog->setAttribute(Qt::WA_DeleteOnClose);
    connect(dialog, &QFileDialog::fileSelected, this, &MainWindow::loadModel);
    dialog->open();
}
