/**
 * The extension's icons (SVGs bundled from style/icons).
 */
import { LabIcon } from '@jupyterlab/ui-components';

import chatSvg from '../style/icons/chat.svg';
import graphSvg from '../style/icons/graph.svg';
import tasksSvg from '../style/icons/tasks.svg';

export const chatIcon = new LabIcon({ name: 'direng-workbench:chat', svgstr: chatSvg });
export const graphIcon = new LabIcon({ name: 'direng-workbench:graph', svgstr: graphSvg });
export const tasksIcon = new LabIcon({ name: 'direng-workbench:tasks', svgstr: tasksSvg });
