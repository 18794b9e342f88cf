// Chat templates and the Jinja interpreter against Python jinja2's renderings
// (tests/fixtures/chat_templates, made by scripts/make_template_fixtures.py).
#include "glassbox/chat_template.h"
#include "jinja/interpreter.h"
#include "jinja/parser.h"

#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QtTest>
#include <cmath>

using gb::jinja::Value;

namespace {

QString fixture_path(const QString & name) {
    return QStringLiteral(GLASSBOX_FIXTURE_DIR "/chat_templates/") + name;
}

QJsonObject load_json(const QString & name) {
    QFile f(fixture_path(name));
    if (!f.open(QIODevice::ReadOnly)) qFatal("cannot open fixture %s", qPrintable(f.fileName()));
    return QJsonDocument::fromJson(f.readAll()).object();
}

// JSON -> interpreter value. Integral numbers become ints (fixtures keep floats non-integral).
Value to_value(const QJsonValue & j) {
    switch (j.type()) {
        case QJsonValue::Null: return Value::none();
        case QJsonValue::Bool: return Value(j.toBool());
        case QJsonValue::Double: {
            const double d = j.toDouble();
            if (d == std::floor(d) && std::fabs(d) < 9e15) return Value(int64_t(d));
            return Value(d);
        }
        case QJsonValue::String: return Value(j.toString().toStdString());
        case QJsonValue::Array: {
            gb::jinja::List items;
            for (const QJsonValue & x : j.toArray()) items.push_back(to_value(x));
            return Value::list(std::move(items));
        }
        case QJsonValue::Object: {
            Value d = Value::dict();
            const QJsonObject o = j.toObject();
            for (auto it = o.begin(); it != o.end(); ++it) d.dict_ref().set(it.key().toStdString(), to_value(it.value()));
            return d;
        }
        default: return Value();
    }
}

// QJsonObject iterates keys sorted; the script writes every dict in sorted key
// order, so insertion order (visible through tojson and items()) is preserved.
gb::jinja::Dict to_context(const QJsonObject & o) {
    gb::jinja::Dict d;
    for (auto it = o.begin(); it != o.end(); ++it) d.set(it.key().toStdString(), to_value(it.value()));
    return d;
}

gb::Result<std::string> render_internal(const std::string & source, const QJsonObject & context) {
    auto program = gb::jinja::parse_program(source);
    if (!program.ok()) return program.error();
    return gb::jinja::render_program(**program, to_context(context));
}

std::string read_file(const QString & path) {
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly)) return {};
    return f.readAll().toStdString();
}

}  // namespace

Q_DECLARE_METATYPE(std::string)

class TstChatTemplate : public QObject {
    Q_OBJECT
  private slots:
    void templates_data();
    void templates();
    void interpreter_data();
    void interpreter();
    void syntaxErrors_data();
    void syntaxErrors();
    void unsupportedConstructs_data();
    void unsupportedConstructs();
    void builtinsMatchResourceFiles();
    void fallback();
};

void TstChatTemplate::templates_data() {
    QTest::addColumn<QString>("name");
    QTest::addColumn<QJsonObject>("testCase");
    for (const char * name : {"gemma", "chatml", "llama3", "llama2", "mistral", "phi3", "zephyr"}) {
        const QJsonObject fixture = load_json(QString(name) + ".json");
        for (const QJsonValue & c : fixture["cases"].toArray()) {
            const QString row = QString(name) + "/" + c["name"].toString();
            QTest::newRow(qPrintable(row)) << QString(name) << c.toObject();
        }
    }
}

void TstChatTemplate::templates() {
    QFETCH(QString, name);
    QFETCH(QJsonObject, testCase);
    const std::string source = gb::builtin_chat_template(name.toStdString());
    QVERIFY(!source.empty());
    const QJsonObject context = testCase["context"].toObject();

    auto check = [&](const gb::Result<std::string> & got) {
        if (testCase.contains("expected")) {
            if (!got.ok()) QFAIL(qPrintable(QString::fromStdString(got.error().to_string())));
            QCOMPARE(QString::fromStdString(*got), testCase["expected"].toString());
        } else {
            QVERIFY2(!got.ok(), "jinja2 raised an error but we rendered");
            if (testCase["raised"].toBool())
                QCOMPARE(QString::fromStdString(got.error().message), testCase["error"].toString());
        }
    };
    check(render_internal(source, context));
    if (QTest::currentTestFailed()) return;

    if (testCase["public_api"].toBool()) {
        auto tmpl = gb::ChatTemplate::parse(source);
        QVERIFY(tmpl.ok());
        gb::ChatTemplateInputs in;
        for (const QJsonValue & m : context["messages"].toArray())
            in.messages.push_back({m["role"].toString().toStdString(), m["content"].toString().toStdString()});
        in.add_generation_prompt = context["add_generation_prompt"].toBool();
        in.bos_token = context["bos_token"].toString().toStdString();
        in.eos_token = context["eos_token"].toString().toStdString();
        check((*tmpl)->render(in));
    }
}

void TstChatTemplate::interpreter_data() {
    QTest::addColumn<QJsonObject>("testCase");
    for (const QJsonValue & c : load_json("interpreter.json")["cases"].toArray())
        QTest::newRow(qPrintable(c["name"].toString())) << c.toObject();
}

void TstChatTemplate::interpreter() {
    QFETCH(QJsonObject, testCase);
    const auto got = render_internal(testCase["template"].toString().toStdString(), testCase["context"].toObject());
    if (testCase.contains("expected")) {
        if (!got.ok()) QFAIL(qPrintable(QString::fromStdString(got.error().to_string())));
        QCOMPARE(QString::fromStdString(*got), testCase["expected"].toString());
    } else {
        QVERIFY2(!got.ok(), qPrintable("jinja2 raised: " + testCase["error"].toString()));
        if (testCase["raised"].toBool())
            QCOMPARE(QString::fromStdString(got.error().message), testCase["error"].toString());
        else
            QVERIFY2(got.error().message.find("line ") != std::string::npos, got.error().message.c_str());
    }
}

void TstChatTemplate::syntaxErrors_data() {
    QTest::addColumn<QString>("source");
    QTest::addColumn<int>("line");
    for (const QJsonValue & c : load_json("interpreter.json")["syntax_errors"].toArray())
        QTest::newRow(qPrintable(c["name"].toString())) << c["template"].toString() << c["line"].toInt();
}

void TstChatTemplate::syntaxErrors() {
    QFETCH(QString, source);
    QFETCH(int, line);
    auto parsed = gb::ChatTemplate::parse(source.toStdString());
    QVERIFY(!parsed.ok());
    const std::string msg = parsed.error().message;
    QVERIFY2(msg.find("line " + std::to_string(line) + ", column ") != std::string::npos, msg.c_str());
    QVERIFY(parsed.error().code == gb::ErrorCode::InvalidArgument || parsed.error().code == gb::ErrorCode::Unsupported);
}

void TstChatTemplate::unsupportedConstructs_data() {
    QTest::addColumn<QString>("source");
    QTest::addColumn<QString>("where");
    QTest::newRow("extends") << "{% extends 'base.html' %}" << "line 1, column 4";
    QTest::newRow("include") << "a\n  {% include 'x' %}" << "line 2, column 6";
    QTest::newRow("call block") << "{% call m() %}x{% endcall %}" << "line 1, column 4";
    QTest::newRow("recursive loop") << "{% for x in y recursive %}{% endfor %}" << "line 1, column 15";
    QTest::newRow("break outside loop") << "\n{% break %}" << "line 2, column 4";
    QTest::newRow("star args") << "{{ f(*xs) }}" << "line 1, column 6";
    QTest::newRow("nesting bomb") << "{{ " + QString(100000, '(') + "1" + QString(100000, ')') + " }}" << "nesting too deep";
    QTest::newRow("not bomb") << "{{ " + QString("not ").repeated(100000) + "1 }}" << "nesting too deep";
    QTest::newRow("else-if bomb") << "{{ 1" + QString(" if x else 1").repeated(100000) + " }}" << "nesting too deep";
    QString blocks;
    for (int i = 0; i < 5000; ++i) blocks += "{% if true %}";
    QTest::newRow("block bomb") << blocks << "nesting too deep";
}

void TstChatTemplate::unsupportedConstructs() {
    QFETCH(QString, source);
    QFETCH(QString, where);
    auto parsed = gb::ChatTemplate::parse(source.toStdString());
    QVERIFY(!parsed.ok());
    QVERIFY2(parsed.error().message.find(where.toStdString()) != std::string::npos, parsed.error().message.c_str());
}

void TstChatTemplate::builtinsMatchResourceFiles() {
    for (const char * name : {"gemma", "chatml", "llama3", "llama2", "mistral", "phi3", "zephyr"}) {
        const std::string on_disk = read_file(QStringLiteral(GLASSBOX_FIXTURE_DIR "/../../resources/chat_templates/") +
                                              name + ".jinja");
        QVERIFY(!on_disk.empty());
        QCOMPARE(gb::builtin_chat_template(name), on_disk);
    }
    QVERIFY(gb::builtin_chat_template("no-such-template").empty());
}

void TstChatTemplate::fallback() {
    gb::ChatTemplateInputs in;
    in.messages = {{"user", "Hi"}};
    in.add_generation_prompt = true;
    const std::string chatml = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n";

    std::string warning;
    auto good = gb::chat_template_or_fallback(gb::builtin_chat_template("gemma"), &warning);
    QVERIFY(warning.empty());
    QCOMPARE(good->source(), gb::builtin_chat_template("gemma"));

    for (const char * bad : {"", "{% if %}", "{{ raise_exception('no thanks') }}", "{{ messages[0].x.y }}"}) {
        auto t = gb::chat_template_or_fallback(bad, &warning);
        QVERIFY2(!warning.empty(), bad);
        QVERIFY(warning.find("ChatML") != std::string::npos);
        auto out = t->render(in);
        QVERIFY(out.ok());
        QCOMPARE(*out, chatml);
    }
}

QTEST_APPLESS_MAIN(TstChatTemplate)
#include "tst_chat_template.moc"
