// The interface every inspector panel implements. Threading contract: every
// method is called on the GUI thread with the owning widget's ImGui context
// current, between ImGui::NewFrame() and ImGui::Render().
#pragma once

#include "snapshot.h"

namespace gb::ui {

class InspectorPanel {
  public:
    virtual ~InspectorPanel() = default;
    // Required: the tab title (stable; also the name used by --inspector PANEL).
    virtual const char * title() const = 0;
    // Required: draws into the current ImGui window, which fills the panel area.
    // The snapshot is immutable and may be shared with other threads.
    virtual void draw(const InspectorSnapshot & snapshot) = 0;
    // Optional: true while the panel animates and needs frames without input.
    virtual bool wantsAnimation() const { return false; }
};

}  // namespace gb::ui
